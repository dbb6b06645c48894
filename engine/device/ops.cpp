#include "engine/device/ops.h"

#include <stdexcept>

#include "engine/device/on_device.h"
#include "kernels/convert.h"
#include "kernels/crop.h"
#include "kernels/maxpool.h"

namespace unet::ops {

void convert(Backend& be, const Tensor& src, const Tensor& dst) {
  expect_shape("convert", "dst", dst.shape, src.shape);
  if (!src.contiguous() || !dst.contiguous()) throw std::invalid_argument("convert: the tensors must be packed");
  UNET_ON_DEVICE(be, convert_cuda(src.data, src.dtype, dst.data, dst.dtype, src.shape.count(), GradMode::overwrite,
                                  stream))
  unet::convert(src.data, src.dtype, dst.data, dst.dtype, src.shape.count());
}

void bias_act_forward(Backend& be, const Tensor& y, const float* bias, ActivationSpec act) {
  UNET_ON_DEVICE(be, bias_act_forward_cuda(y, bias, act, stream))
  unet::bias_act_forward(y, bias, act);
}

void bias_act_backward(Backend& be, const Tensor& y, const Tensor& dy, float* dbias, ActivationSpec act) {
  UNET_ON_DEVICE(be, bias_act_backward_cuda(y, dy, dbias, act, stream))
  unet::bias_act_backward(y, dy, dbias, act);
}

void maxpool_forward(Backend& be, const Tensor& x, const Tensor& y, uint8_t* argmax, PoolWindow win) {
  UNET_ON_DEVICE(be, maxpool_forward_cuda(x, y, argmax, stream, win))
  unet::maxpool_forward(x, y, argmax, win);
}

void maxpool_backward(Backend& be, const Tensor& dy, const uint8_t* argmax, const Tensor& dx, GradMode mode,
                      PoolWindow win) {
  UNET_ON_DEVICE(be, maxpool_backward_cuda(dy, argmax, dx, mode, stream, win))
  unet::maxpool_backward(dy, argmax, dx, mode, win);
}

void subsample_labels(Backend& be, const int32_t* in, int64_t n, const Grid& grid, const Grid& stride, int32_t* out) {
  UNET_ON_DEVICE(be, subsample_labels_cuda(in, n, grid, stride, out, stream))
  unet::subsample_labels(in, n, grid, stride, out);
}

void crop_forward(Backend& be, const Tensor& x, const Tensor& y) {
  UNET_ON_DEVICE(be, crop_forward_cuda(x, y, stream))
  unet::crop_forward(x, y);
}

void crop_backward(Backend& be, const Tensor& dy, const Tensor& dx, GradMode mode) {
  UNET_ON_DEVICE(be, crop_backward_cuda(dy, dx, mode, stream))
  unet::crop_backward(dy, dx, mode);
}

void dropout_forward(Backend& be, const Tensor& x, const Tensor& y, const DropoutSpec& spec) {
  UNET_ON_DEVICE(be, dropout_forward_cuda(x, y, spec, stream))
  unet::dropout_forward(x, y, spec);
}

void dropout_backward(Backend& be, const Tensor& dy, const Tensor& dx, const DropoutSpec& spec) {
  UNET_ON_DEVICE(be, dropout_backward_cuda(dy, dx, spec, stream))
  unet::dropout_backward(dy, dx, spec);
}

}  // namespace unet::ops
