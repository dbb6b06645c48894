// Dynamic loss scaling for fp16 training (--precision fp16), the rule of
// PyTorch's GradScaler: the loss gradient is multiplied by scale() so that
// small gradients survive fp16 (whose smallest normal is 6e-5); a step whose
// gradients overflowed (a norm that is not finite) is skipped and the scale
// halved; after `interval` finite steps in a row it doubles. The scale is a
// power of two, so scaling and unscaling are exact: a run that never overflows
// computes bit for bit what an unscaled one does. Off (scale 1, nothing
// skipped) for the other precisions, whose range is fp32's.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace unet {

// The scale of one-off fp16 steps that no scaler adjusts (unet bench, the GPU
// tests): cuDNN writes a layer's weight gradient in fp16 before it is added
// into the fp32 gradient, so the dynamic scaler's start of 2^16 can overflow
// it (fp16 ends at 65504) until the scaler has halved a few times. 2^10 leaves
// those gradients room and still scales every small one out of fp16's subnormals.
constexpr float kFixedFp16Scale = 1024.f;

struct LossScaling {
  bool dynamic = false;
  float initial = 65536.f;  // 2^16, GradScaler's default
  int64_t interval = 2000;  // finite steps before the scale doubles
};

class LossScaler {
 public:
  explicit LossScaler(const LossScaling& spec) : spec_(spec), scale_(spec.dynamic ? spec.initial : 1.f) {
    int exponent = 0;
    if (spec.dynamic && (std::frexp(spec.initial, &exponent) != 0.5f || spec.interval < 1))
      throw std::invalid_argument("loss scaling: the initial scale must be a power of two and the interval >= 1");
  }
  bool dynamic() const { return spec_.dynamic; }
  float scale() const { return scale_; }
  int64_t good_steps() const { return good_; }
  // A resumed run's scale and count (from its training state).
  void restore(float scale, int64_t good_steps) { scale_ = scale, good_ = good_steps; }

  // After a step's gradients: whether to take the step. Throws when the
  // gradients overflow even unscaled: fp16 cannot hold this model's activations.
  bool update(bool finite) {
    if (!spec_.dynamic) return finite;
    if (!finite) {
      good_ = 0;
      if (scale_ <= 1.f)
        throw std::runtime_error("the gradients overflow fp16 even with loss scale 1; train with --precision bf16 "
                                 "(fp32's range) or lower the learning rate");
      scale_ /= 2;
      return false;
    }
    if (++good_ >= spec_.interval) {
      good_ = 0;
      if (scale_ < 0x1p100f) scale_ *= 2;  // far below fp32's range
    }
    return true;
  }

 private:
  LossScaling spec_;
  float scale_;
  int64_t good_ = 0;
};

}  // namespace unet
