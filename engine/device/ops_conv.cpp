// The convolutions and up-convolutions, dispatched once. On a GPU under mixed
// precision each call first converts the layer's fp32 master weights into a
// 16-bit copy at its workspace's start (and cuDNN writes a 16-bit weight
// gradient beside it, added into the fp32 one): the workspace sizes below
// count that room.
#include <algorithm>
#include <string>
#include <vector>

#include "engine/device/on_device.h"
#include "engine/device/ops.h"
#include "kernels/conv_dnnl.h"
#include "kernels/convert.h"
#include "kernels/upconv.h"

namespace unet::ops {
namespace {

int64_t aligned(int64_t bytes) { return (bytes + 255) / 256 * 256; }

// Bytes of a 16-bit copy of `count` weights in activations of `type` (0 in fp32).
int64_t half_bytes(DType type, int64_t count) { return type == DType::f32 ? 0 : aligned(count * 2); }

#ifdef UNET_CUDA
// What a convolution multiplies: the fp32 weights, or their 16-bit copy made
// now at the workspace's start, beside room for the 16-bit weight gradient.
struct Operands {
  const void* w;
  void* dw;    // null in fp32: cuDNN accumulates into the fp32 gradient itself
  void* rest;  // cuDNN's workspace
};

Operands operands(Backend& be, const float* w, int64_t count, void* workspace) {
  const DType type = be.activation_type();
  if (type == DType::f32) return {w, nullptr, workspace};
  char* base = static_cast<char*>(workspace);
  convert_cuda(w, DType::f32, base, type, count, GradMode::overwrite, be.stream());
  return {base, base + half_bytes(type, count), base + 2 * half_bytes(type, count)};
}

// The up-convolution's product, in the workspace ahead of its weights' copy.
int64_t upconv_product_bytes(const Shape& in, int64_t out_channels, PoolWindow win) {
  return aligned(upconv_workspace_floats_cuda(in, out_channels, win) * int64_t(sizeof(float)));
}

// The up-convolution's weights in the activations' type (after its product in the workspace).
const void* upconv_weights(Backend& be, const Shape& in, int64_t co, const float* w, void* workspace,
                           PoolWindow win) {
  const DType type = be.activation_type();
  if (type == DType::f32) return w;
  char* copy = static_cast<char*>(workspace) + upconv_product_bytes(in, co, win);
  convert_cuda(w, DType::f32, copy, type, upconv_weight_count(in, co, win), GradMode::overwrite, be.stream());
  return copy;
}
#endif

}  // namespace

int plan_conv(Backend& be, const Shape& in, int64_t out_channels, const ConvSpec& spec, ConvStrides strides) {
  std::vector<ConvPlan>& plans = be.conv_plans();
  std::string key = conv_key(in, out_channels, spec, strides);
  for (size_t i = 0; i < plans.size(); ++i)
    if (plans[i].key == key) return static_cast<int>(i);
  ConvPlan p{std::move(key), spec, out_channels * in.c, 0, nullptr, nullptr};
  for (int d = 0; d < in.dims; ++d) p.weights *= spec.kernel;
  if (!be.is_cuda() && !be.reference_convolutions()) {
    p.dnnl = std::make_shared<ConvDnnl>(in, out_channels, spec, strides, be.conv_type());
    p.workspace_bytes = int64_t(p.dnnl->workspace_bytes());
  } else {
    p.workspace_bytes = conv_workspace_floats(in, out_channels, spec) * int64_t(sizeof(float));  // im2col's columns
  }
#ifdef UNET_CUDA
  if (be.is_cuda()) {
    const DType type = be.activation_type();
    p.cudnn = std::make_shared<ConvCudnn>(be.cudnn(), in, out_channels, spec, be.tf32(), false, strides, type);
    p.workspace_bytes = int64_t(p.cudnn->workspace_bytes()) + 2 * half_bytes(type, p.weights);
  }
#endif
  plans.push_back(std::move(p));
  return static_cast<int>(plans.size() - 1);
}

int64_t conv_workspace_bytes(Backend& be, int plan) { return be.conv_plans().at(plan).workspace_bytes; }

std::vector<std::string> cpu_conv_kernels(Backend& be) {
  std::vector<std::string> names;
  if (be.is_cuda()) return names;
  for (const ConvPlan& p : be.conv_plans())
    for (const std::string& k : p.dnnl ? p.dnnl->kernels() : std::vector<std::string>{"im2col+openblas"})
      if (std::find(names.begin(), names.end(), k) == names.end()) names.push_back(k);
  return names;
}

void conv_forward(Backend& be, int plan, const Tensor& x, const float* w, const float* bias, const Tensor& y,
                  void* workspace) {
  const ConvPlan& p = be.conv_plans()[plan];
#ifdef UNET_CUDA
  if (be.is_cuda()) {
    const Operands o = operands(be, w, p.weights, workspace);
    return p.cudnn->forward(x, o.w, bias, y, o.rest, be.stream());
  }
#endif
  if (p.dnnl) return p.dnnl->forward(x, w, bias, y, workspace);
  unet::conv_forward(x, w, bias, y, p.spec, static_cast<float*>(workspace));
}

void conv_bias_act_forward(Backend& be, int plan, const Tensor& x, const float* w, const float* bias, const Tensor& y,
                           ActivationSpec act, void* workspace) {
  const ConvPlan& p = be.conv_plans()[plan];
#ifdef UNET_CUDA
  if (be.is_cuda()) {
    const Operands o = operands(be, w, p.weights, workspace);
    if (act.kind == Activation::relu && bias && p.cudnn->forward_bias_relu(x, o.w, bias, y, o.rest, be.stream()))
      return;
    p.cudnn->forward(x, o.w, nullptr, y, o.rest, be.stream());
    return bias_act_forward(be, y, bias, act);
  }
#endif
  if (p.dnnl) {  // oneDNN adds the bias in its kernel
    p.dnnl->forward(x, w, bias, y, workspace);
    return bias_act_forward(be, y, nullptr, act);
  }
  conv_forward(be, plan, x, w, nullptr, y, workspace);
  bias_act_forward(be, y, bias, act);
}

void conv_backward(Backend& be, int plan, const Tensor& x, const float* w, const Tensor& dy, const Tensor& dx,
                   float* dw, float* dbias, GradMode mode, void* workspace) {
  const ConvPlan& p = be.conv_plans()[plan];
#ifdef UNET_CUDA
  if (be.is_cuda()) {
    const Operands o = operands(be, w, p.weights, workspace);
    p.cudnn->backward(x, o.w, dy, dx, o.dw ? o.dw : dw, dbias, mode, o.rest, be.stream());
    if (o.dw) convert_cuda(o.dw, be.activation_type(), dw, DType::f32, p.weights, GradMode::accumulate, be.stream());
    return;
  }
#endif
  if (p.dnnl) return p.dnnl->backward(x, w, dy, dx, dw, dbias, mode, workspace);
  unet::conv_backward(x, w, dy, dx, dw, dbias, p.spec, mode, static_cast<float*>(workspace));
}

int64_t upconv_workspace_bytes(Backend& be, const Shape& in, int64_t out_channels, PoolWindow win) {
#ifdef UNET_CUDA
  if (be.is_cuda())
    return upconv_product_bytes(in, out_channels, win) +
           half_bytes(be.activation_type(), upconv_weight_count(in, out_channels, win));
#endif
  return upconv_workspace_floats(in, out_channels, win) * int64_t(sizeof(float));
}

void upconv_forward(Backend& be, const Tensor& x, const float* w, const float* bias, const Tensor& y,
                    void* workspace, PoolWindow win) {
  UNET_ON_DEVICE(be, upconv_forward_cuda(be.cublas(), x, upconv_weights(be, x.shape, y.shape.c, w, workspace, win),
                                         bias, y, static_cast<float*>(workspace), stream, win))
  unet::upconv_forward(x, w, bias, y, static_cast<float*>(workspace), win);
}

void upconv_backward(Backend& be, const Tensor& x, const float* w, const Tensor& dy, const Tensor& dx, float* dw,
                     float* dbias, GradMode mode, void* workspace, PoolWindow win) {
  UNET_ON_DEVICE(be, upconv_backward_cuda(be.cublas(), x, upconv_weights(be, x.shape, dy.shape.c, w, workspace, win),
                                          dy, dx, dw, dbias, mode, static_cast<float*>(workspace), stream, win))
  unet::upconv_backward(x, w, dy, dx, dw, dbias, mode, static_cast<float*>(workspace), win);
}

}  // namespace unet::ops
