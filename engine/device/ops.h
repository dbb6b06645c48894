// The ops a U-Net runs, each dispatched once: the CPU kernel, or the CUDA
// kernel queued on the backend's stream with the backend's handles and
// scratch. An op is added as its kernel files, its call sites and one function
// here (ops.cpp: the stream-only ops; ops_conv.cpp: the convolutions, which
// keep plans and 16-bit weight copies; ops_reduce.cpp: the norms and the
// training step, which reduce through the backend's scratch).
//
// Workspaces: the caller passes one of at least the *_workspace_bytes() asked
// for; reserve() sizes the backend's reduction scratch once, when the net is
// planned, so that a step allocates nothing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/device/backend.h"
#include "kernels/activation.h"
#include "kernels/base/tensor.h"
#include "kernels/conv.h"
#include "kernels/dropout.h"
#include "kernels/loss.h"
#include "kernels/norm.h"
#include "kernels/optimizer.h"
#include "kernels/pool_window.h"
#include "kernels/subsample.h"

namespace unet::ops {

// dst = src converted to dst's type (half.h's rounding): same shape, both packed.
void convert(Backend& be, const Tensor& src, const Tensor& dst);
void bias_act_forward(Backend& be, const Tensor& y, const float* bias, ActivationSpec act);
void bias_act_backward(Backend& be, const Tensor& y, const Tensor& dy, float* dbias, ActivationSpec act);
void maxpool_forward(Backend& be, const Tensor& x, const Tensor& y, uint8_t* argmax, PoolWindow win);
void maxpool_backward(Backend& be, const Tensor& dy, const uint8_t* argmax, const Tensor& dx, GradMode mode,
                      PoolWindow win);
void crop_forward(Backend& be, const Tensor& x, const Tensor& y);
void crop_backward(Backend& be, const Tensor& dy, const Tensor& dx, GradMode mode);
void subsample_labels(Backend& be, const int32_t* in, int64_t n, const Grid& grid, const Grid& stride, int32_t* out);
void dropout_forward(Backend& be, const Tensor& x, const Tensor& y, const DropoutSpec& spec);
void dropout_backward(Backend& be, const Tensor& dy, const Tensor& dx, const DropoutSpec& spec);


// Convolutions: one plan per distinct layer (shapes, strides, spec), made when
// the net is planned (the CUDA backend chooses its cuDNN algorithms there,
// the CPU backend its oneDNN primitives); the ops take the plan's index.
int plan_conv(Backend& be, const Shape& in, int64_t out_channels, const ConvSpec& spec, ConvStrides strides);
int64_t conv_workspace_bytes(Backend& be, int plan);
// The CPU's convolution kernels over every plan, each named once: oneDNN's
// implementations ("jit:avx512_core", ...), or "im2col+openblas" for the
// reference; empty on a GPU.
std::vector<std::string> cpu_conv_kernels(Backend& be);
void conv_forward(Backend& be, int plan, const Tensor& x, const float* w, const float* bias, const Tensor& y,
                  void* workspace);
// y = act(conv(x) + bias): one fused call where the device can (cuDNN, for
// ReLU, when its chosen algorithm allows it), else the convolution and then
// bias_act_forward.
void conv_bias_act_forward(Backend& be, int plan, const Tensor& x, const float* w, const float* bias, const Tensor& y,
                           ActivationSpec act, void* workspace);
void conv_backward(Backend& be, int plan, const Tensor& x, const float* w, const Tensor& dy, const Tensor& dx,
                   float* dw, float* dbias, GradMode mode, void* workspace);

int64_t upconv_workspace_bytes(Backend& be, const Shape& in, int64_t out_channels, PoolWindow win);
void upconv_forward(Backend& be, const Tensor& x, const float* w, const float* bias, const Tensor& y, void* workspace,
                    PoolWindow win);
void upconv_backward(Backend& be, const Tensor& x, const float* w, const Tensor& dy, const Tensor& dx, float* dw,
                     float* dbias, GradMode mode, void* workspace, PoolWindow win);

// Synchronized batch norm (a non-null reducer) is the CPU's alone.
void norm_forward_train(Backend& be, const Tensor& x, const Tensor& y, const float* gamma, const float* beta,
                        float* mean, float* invstd, float* running_mean, float* running_var, const NormSpec& spec,
                        const NormSumsReducer& reduce);
void norm_forward_infer(Backend& be, const Tensor& x, const Tensor& y, const float* gamma, const float* beta,
                        const float* running_mean, const float* running_var, const NormSpec& spec);
void norm_backward(Backend& be, const Tensor& x, const Tensor& dy, const Tensor& dx, const float* gamma,
                   const float* mean, const float* invstd, float* dgamma, float* dbeta, const NormSpec& spec,
                   const NormSumsReducer& reduce);

// The scratch the norms and the step's reductions need, for logits of this
// shape and norms of at most `norm_groups` groups.
void reserve(Backend& be, const Shape& logits, int64_t norm_groups);
// A training step's loss and update, on the step's scalars in the backend's
// memory (step.h), so that nothing in the step waits for the host:
// step_loss writes dlogits (times in->loss_scale) and adds loss /
// in->accumulate to out->loss. A label outside the classes: the GPU records it
// in out (the step is then not taken), the CPU throws at once
// (bad_label_message). step_update: the squared norm of grads[0, count) and
// the factor into out (step_factor), then, unless the factor is 0, the
// optimizer over each range of params, grads, m and v.
void step_loss(Backend& be, const Tensor& logits, const int32_t* labels, const Tensor& dlogits, const LossSpec& spec,
               const LossSumsReducer& reduce, const StepInputs* in, StepOutputs* out);
void step_update(Backend& be, float* params, const float* grads, float* m, float* v, int64_t count,
                 const ParamRanges& ranges, const OptimizerSpec& spec, const StepInputs* in, StepOutputs* out);

}  // namespace unet::ops
