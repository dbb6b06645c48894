// Output heads fused with their losses: one call returns the loss and writes its
// gradient with respect to the logits.
//
// Heads: sigmoid (one logit channel, binary labels 0/1) or softmax (C >= 2
// channels, labels 0..C-1). Labels are int32, one per voxel, N x D x H x W,
// contiguous. A voxel whose label equals ignore_label contributes nothing to
// the loss and gets a zero gradient; any other label outside the classes is an
// error (std::invalid_argument naming the value and the voxel).
//
// The loss is   ce_weight * CE + region_weight * R.
//   CE: mean over counted voxels of -log p(label), each voxel weighted by
//       class_weights[label] and normalized by the sum of those weights
//       (PyTorch's weighted mean). Sigmoid: binary cross-entropy, classes
//       0 and 1 for the weights.
//   R:  for each class c taken (softmax: 0..C-1, or 1..C-1 without background;
//       sigmoid: the foreground only) the Tversky index over the whole batch,
//         TI_c = (TP + s) / (TP + alpha * FP + beta * FN + s),
//       TP = sum p_c g_c, FP = sum p_c (1 - g_c), FN = sum (1 - p_c) g_c, with p
//       the probabilities and g the one-hot labels; R = mean_c (1 - TI_c)^gamma.
//       alpha = beta = 0.5 is soft Dice, alpha = beta = 1 is (soft) Jaccard,
//       gamma != 1 is the focal Tversky loss.
//
// Memory contract
//   loss_forward_backward: reads logits, labels; overwrites dlogits (same
//   shape as logits; it may not alias them). Returns the loss.
#pragma once

#include <math.h>

#include <functional>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "kernels/common.h"

namespace unet {

enum class Head { sigmoid, softmax };

enum class LossKind { bce, ce, weighted_ce, dice, jaccard, tversky, focal_tversky, dice_ce };

struct LossSpec {
  Head head = Head::softmax;
  float ce_weight = 1.f;
  float region_weight = 0.f;
  float alpha = 0.5f, beta = 0.5f, gamma = 1.f;
  float smooth = 1.f;                // s above: keeps an absent class from dividing by zero
  bool include_background = true;    // softmax only
  std::vector<float> class_weights;  // CE only; empty means all ones
  int32_t ignore_label = -1;         // negative: no label is ignored
};

// The spec of a named loss. tversky_beta is the weight of false negatives;
// alpha = 1 - beta as in Salehi et al.; focal_gamma is the focal Tversky exponent.
LossSpec make_loss(LossKind kind, Head head, float tversky_beta = 0.7f, float focal_gamma = 0.75f,
                   std::vector<float> class_weights = {});

// Numerically stable pieces shared by host and device.
UNET_HD float sigmoid(float z) { return z >= 0.f ? 1.f / (1.f + expf(-z)) : expf(z) / (1.f + expf(z)); }
// log(1 + exp(z)) without overflow.
UNET_HD float softplus(float z) { return z > 0.f ? z + log1pf(expf(-z)) : log1pf(expf(z)); }

// The loss's batch sums (the Tversky TP, sum p, sum g per class; the weighted
// CE and its weight total). Data parallelism passes a function that sums them
// over ranks before the loss and its gradient are formed: every rank then gets
// the loss of the global batch and the gradient of that loss with respect to
// its own logits, so that summing the parameter gradients over ranks gives the
// single-process gradient (region losses included, which a per-rank mean would
// not).
using LossSumsReducer = std::function<void(std::vector<double>& sums)>;

double loss_forward_backward(const Tensor& logits, const int32_t* labels, const Tensor& dlogits,
                             const LossSpec& spec, const LossSumsReducer& reduce_sums = nullptr);

}  // namespace unet
