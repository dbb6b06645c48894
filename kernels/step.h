// The scalars of one training step, kept in the backend's memory so that the
// step (passes, loss, gradient norm, clipping, optimizer) runs without the host
// in between, and can be one CUDA Graph whatever the learning rate or the loss
// scale: the host writes StepInputs before the step and reads StepOutputs
// after it, one copy each way.
#pragma once

#include <math.h>

#include <cmath>
#include <cstdint>

#include "kernels/base/common.h"

namespace unet {

struct StepInputs {
  double clip_norm = 0;        // the global gradient norm's bound; <= 0: no clipping
  float lr = 0;
  float bias1 = 1, bias2 = 1;  // Adam's bias corrections 1 - beta^t (adam_bias)
  float loss_scale = 1;        // the loss gradient's factor, a power of two (LossScaler)
  int32_t accumulate = 1;      // batches whose gradients this step sums
};

constexpr uint64_t kNoBadLabel = ~uint64_t(0);

struct StepOutputs {
  double loss = 0;   // the mean of the batches' losses
  double sumsq = 0;  // the summed gradient's squared norm, as scaled (loss scale, accumulation)
  // The factor the optimizer applied to the summed gradient (clipping,
  // accumulation, unscaling); 0 when the step was not taken: a loss or a
  // gradient that is not finite, or a label outside the classes.
  float factor = 0;
  int32_t bad_label = 0;           // the first such label, at voxel first_bad of its batch
  uint64_t first_bad = kNoBadLabel;
};

// 1 - beta^step (step 1-based), in double as torch.optim does.
inline float adam_bias(float beta, int64_t step) {
  return static_cast<float>(1.0 - std::pow(double(beta), double(step)));
}

// The factor that clips a gradient of norm `norm` to at most max_norm
// (torch.nn.utils.clip_grad_norm_): min(1, max_norm / (norm + 1e-6)); 1 when
// max_norm <= 0 (no clipping).
UNET_HD float clip_scale(double norm, double max_norm) {
  if (max_norm <= 0) return 1.f;
  const double s = max_norm / (norm + 1e-6);
  return s < 1 ? static_cast<float>(s) : 1.f;
}

// The true gradient norm: the summed gradient's, unscaled.
UNET_HD double step_norm(double sumsq, const StepInputs& in) { return sqrt(sumsq) / in.accumulate / in.loss_scale; }

// StepOutputs::factor, from the sums: the same on the host and the device.
UNET_HD float step_factor(const StepOutputs& out, const StepInputs& in) {
  const double norm = step_norm(out.sumsq, in);
  if (!isfinite(norm) || !isfinite(out.loss) || out.first_bad != kNoBadLabel) return 0.f;
  return clip_scale(norm, in.clip_norm) / static_cast<float>(in.accumulate) / in.loss_scale;
}

}  // namespace unet
