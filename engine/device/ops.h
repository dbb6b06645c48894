// The ops that need nothing of a device but its stream, each dispatched once,
// here: the CPU kernel, or the CUDA kernel queued on the device's stream. An op
// of this kind is added as its kernel files, its call sites and one function
// below. The ops that hold device state (convolution plans and cuDNN, the
// cuBLAS up-convolution, the norms' and the step's reduction scratch) are
// Backend's methods instead, each backend keeping that state.
#pragma once

#include <cstdint>

#include "engine/device/backend.h"
#include "kernels/activation.h"
#include "kernels/base/tensor.h"
#include "kernels/dropout.h"

namespace unet::ops {

// dst = src converted to dst's type (half.h's rounding): same shape, both packed.
void convert(Backend& be, const Tensor& src, const Tensor& dst);
void bias_act_forward(Backend& be, const Tensor& y, const float* bias, ActivationSpec act);
void bias_act_backward(Backend& be, const Tensor& y, const Tensor& dy, float* dbias, ActivationSpec act);
void maxpool_forward(Backend& be, const Tensor& x, const Tensor& y, uint8_t* argmax);
void maxpool_backward(Backend& be, const Tensor& dy, const uint8_t* argmax, const Tensor& dx, GradMode mode);
void crop_forward(Backend& be, const Tensor& x, const Tensor& y);
void crop_backward(Backend& be, const Tensor& dy, const Tensor& dx, GradMode mode);
void dropout_forward(Backend& be, const Tensor& x, const Tensor& y, const DropoutSpec& spec);
void dropout_backward(Backend& be, const Tensor& dy, const Tensor& dx, const DropoutSpec& spec);

}  // namespace unet::ops
