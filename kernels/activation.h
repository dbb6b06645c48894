// Bias + activation (identity, ReLU, LeakyReLU), fused: y = act(y + bias[c]).
//
// Memory contract
//   bias_act_forward:  reads bias; overwrites y in place (y holds the convolution
//                      output on entry, the activation on exit).
//   bias_act_backward: reads y (the forward output); overwrites dy in place with
//                      the gradient with respect to the pre-activation;
//                      accumulates (+=) into dbias when it is not null.
// The derivative is taken from the output: for slope >= 0, y > 0 exactly when
// the pre-activation was > 0, so the input need not be kept.
#pragma once

#include "kernels/base/tensor.h"
#include "kernels/base/common.h"

namespace unet {

enum class Activation { identity, relu, leaky_relu };

struct ActivationSpec {
  Activation kind = Activation::relu;
  float slope = 0.01f;  // LeakyReLU's negative slope (ignored otherwise)
};

UNET_HD float activate(float x, Activation kind, float slope) {
  if (kind == Activation::identity || x > 0.f) return x;
  return kind == Activation::relu ? 0.f : slope * x;
}

// d act / d x, expressed through the output y = act(x).
UNET_HD float activate_grad(float y, Activation kind, float slope) {
  if (kind == Activation::identity || y > 0.f) return 1.f;
  return kind == Activation::relu ? 0.f : slope;
}

void bias_act_forward(const Tensor& y, const float* bias, ActivationSpec act);
void bias_act_backward(const Tensor& y, const Tensor& dy, float* dbias, ActivationSpec act);

#ifdef UNET_CUDA
// The same contract on device pointers; the stream is always the last argument.
void bias_act_forward_cuda(const Tensor& y, const float* bias, ActivationSpec act, Stream stream);
void bias_act_backward_cuda(const Tensor& y, const Tensor& dy, float* dbias, ActivationSpec act,
                            Stream stream);
#endif

}  // namespace unet
