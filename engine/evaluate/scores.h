// The scores of a model over whole cases, predicted by sliding window: per-class
// Dice and IoU, their mean over the foreground classes, and pixel accuracy. The
// trainer's validation and `unet train`'s report on the held-out cases are this.
#pragma once

#include <functional>
#include <vector>

#include "engine/model/sliding_window.h"
#include "engine/model/unet_model.h"
#include "io/data/patch.h"

namespace unet {

struct Scores {
  std::vector<double> dice, iou;    // per class; NaN where a class is absent from both
  double mean_foreground_dice = 0;  // over classes 1.. that are present
  double pixel_accuracy = 0;        // over the voxels not ignored
};

// on_case, when given, sees each case's logits (head channels x D x H x W) as
// they are predicted. ignore_label: a class left out of every score (-1: none).
using CaseLogits = std::function<void(size_t index, const std::vector<float>& logits)>;
Scores score_cases(UNet& model, const std::vector<Sample>& cases, const WindowSpec& window, int ignore_label = -1,
                   const CaseLogits& on_case = nullptr);

}  // namespace unet
