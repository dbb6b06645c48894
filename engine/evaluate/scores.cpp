#include "engine/evaluate/scores.h"

#include <cmath>

#include "kernels/metrics.h"

namespace unet {

Scores score_cases(UNet& model, const std::vector<Sample>& cases, const WindowSpec& window, int ignore_label,
                   const CaseLogits& on_case) {
  const UNetConfig& c = model.config();
  Confusion counts(c.classes);
  for (size_t i = 0; i < cases.size(); ++i) {
    const Sample& s = cases[i];
    std::vector<float> logits = predict_logits(model, s.image.data(), s.grid(), window);
    const Shape shape{1, head_channels(c.head, c.classes), s.d, s.h, s.w, s.dims};
    confusion_accumulate(Tensor(logits.data(), shape), s.label.data(), c.head, ignore_label, counts);
    if (on_case) on_case(i, logits);
  }
  Scores out;
  double sum = 0;
  int counted = 0;
  int64_t correct = 0, total = 0;
  for (int k = 0; k < c.classes; ++k) {
    out.dice.push_back(dice(counts, k));
    out.iou.push_back(iou(counts, k));
    if (k > 0 && !std::isnan(out.dice.back())) sum += out.dice.back(), ++counted;
    correct += counts.tp[k], total += counts.tp[k] + counts.fn[k];
  }
  out.mean_foreground_dice = counted ? sum / counted : 0;
  out.pixel_accuracy = total ? double(correct) / double(total) : 0.0;
  return out;
}

}  // namespace unet
