// Segmentation metrics from logits and labels: per-class confusion counts, and
// Dice and IoU from them.
//
// The prediction is the argmax over channels (softmax head) or logit > 0
// (sigmoid head, classes 0 = background and 1 = foreground). Voxels labelled
// ignore_label are not counted; other labels outside the classes are an error
// (std::invalid_argument).
//
// Memory contract
//   confusion_accumulate: reads logits, labels; accumulates (+=) into the counts.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/base/tensor.h"
#include "kernels/head.h"

namespace unet {

struct Confusion {
  explicit Confusion(int classes = 0) : tp(classes, 0), fp(classes, 0), fn(classes, 0) {}
  std::vector<int64_t> tp, fp, fn;
  int classes() const { return static_cast<int>(tp.size()); }
};

void confusion_accumulate(const Tensor& logits, const int32_t* labels, Head head, int32_t ignore_label,
                          Confusion& counts);

// The predicted class of the voxel whose first logit z points at (channels
// `plane` apart; k classes): logit > 0 for sigmoid, the first maximum for softmax.
UNET_HD int predicted_class(const float* z, int64_t plane, int k, bool sigmoid_head) {
  if (sigmoid_head) return z[0] > 0.f ? 1 : 0;
  int p = 0;
  float best = z[0];
  for (int c = 1; c < k; ++c)
    if (z[c * plane] > best) best = z[c * plane], p = c;
  return p;
}

#ifdef UNET_CUDA
// The same on device logits and labels; integer counts (atomics on integers
// are exact, so the order does not matter). `workspace` holds 3 x classes + 1
// 64-bit counters; the counts come to the host (one copy and a wait).
void confusion_accumulate_cuda(const Tensor& logits, const int32_t* labels, Head head, int32_t ignore_label,
                               Confusion& counts, unsigned long long* workspace, Stream stream);
#endif

// 2 TP / (2 TP + FP + FN) and TP / (TP + FP + FN); NaN when the class is absent
// from both prediction and label (nothing to score), as nnU-Net reports it.
double dice(const Confusion& c, int cls);
double iou(const Confusion& c, int cls);

}  // namespace unet
