#include "kernels/metrics.h"

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace unet {

void confusion_accumulate(const Tensor& logits, const int32_t* labels, Head head, int32_t ignore_label,
                          Confusion& counts) {
  const Shape& s = logits.shape;
  const int k = head_classes(head, s);
  if (counts.classes() != k)
    throw std::invalid_argument("confusion_accumulate: counts for " + std::to_string(counts.classes()) +
                                " classes, logits give " + std::to_string(k));
  const int64_t plane = s.spatial();
  // Per sample and class: tp, predicted (tp + fp), labelled (tp + fn). Exact
  // integer counts, so the order of the parallel sums does not matter.
  std::vector<int64_t> tp(k, 0), pred(k, 0), lab(k, 0);
  for (int64_t n = 0; n < s.n; ++n) {
    const float* x = logits.sample(n);
    const int32_t* g = labels + n * plane;
    for (int64_t i = 0; i < plane; ++i) {
      const int32_t label = g[i];
      if (label == ignore_label && ignore_label >= 0) continue;
      if (label < 0 || label >= k)
        throw std::invalid_argument("label " + std::to_string(label) + " at voxel " + std::to_string(i) +
                                    " of sample " + std::to_string(n) + " is outside the " + std::to_string(k) +
                                    " classes");
      const int p = predicted_class(x + i, plane, k, head == Head::sigmoid);
      ++pred[p];
      ++lab[label];
      if (p == label) ++tp[p];
    }
  }
  for (int c = 0; c < k; ++c) {
    counts.tp[c] += tp[c];
    counts.fp[c] += pred[c] - tp[c];
    counts.fn[c] += lab[c] - tp[c];
  }
}

double dice(const Confusion& c, int cls) {
  const double denom = 2.0 * double(c.tp[cls]) + double(c.fp[cls]) + double(c.fn[cls]);
  return denom > 0 ? 2.0 * double(c.tp[cls]) / denom : std::numeric_limits<double>::quiet_NaN();
}

double iou(const Confusion& c, int cls) {
  const double denom = double(c.tp[cls]) + double(c.fp[cls]) + double(c.fn[cls]);
  return denom > 0 ? double(c.tp[cls]) / denom : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace unet
