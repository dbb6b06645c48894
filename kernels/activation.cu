// CUDA launchers for bias + activation; the arithmetic is activation.h's, on
// tensors of any storage type (fp32 math).
#include "kernels/base/cuda_check.h"
#include "kernels/activation.h"
#include "kernels/base/cuda_launch.h"

namespace unet {
namespace {

template <class T>
__global__ void bias_act_forward_kernel(T* y, const float* bias, int64_t channels, int64_t plane, int64_t batch_stride,
                                        int64_t total, Activation kind, float slope) {
  UNET_GRID_LOOP(i, total) {
    const int64_t n = i / (channels * plane), r = i % (channels * plane), c = r / plane;
    T* p = y + n * batch_stride + r;
    store(p, activate(load(p) + (bias ? bias[c] : 0.f), kind, slope));
  }
}

template <class T>
__global__ void act_backward_kernel(const T* y, T* dy, int64_t channels, int64_t plane, int64_t y_stride,
                                    int64_t dy_stride, int64_t total, Activation kind, float slope) {
  UNET_GRID_LOOP(i, total) {
    const int64_t n = i / (channels * plane), r = i % (channels * plane);
    T* d = dy + n * dy_stride + r;
    store(d, load(d) * activate_grad(load(y + n * y_stride + r), kind, slope));
  }
}

}  // namespace

void bias_act_forward_cuda(const Tensor& y, const float* bias, ActivationSpec act, Stream stream) {
  const Shape& s = y.shape;
  if (s.count() == 0) return;
  UNET_DISPATCH(y.dtype, T,
                bias_act_forward_kernel<<<blocks_for(s.count()), kThreads, 0, stream>>>(
                    y.as<T>(), bias, s.c, s.spatial(), y.batch_stride, s.count(), act.kind, act.slope));
  UNET_CUDA_CHECK_LAUNCH();
}

void bias_act_backward_cuda(const Tensor& y, const Tensor& dy, float* dbias, ActivationSpec act,
                            Stream stream) {
  expect_shape("bias_act_backward_cuda", "dy", dy.shape, y.shape);
  expect_dtype("bias_act_backward_cuda", "dy", dy, y.dtype);
  const Shape& s = y.shape;
  if (s.count() == 0) return;
  UNET_DISPATCH(y.dtype, T,
                act_backward_kernel<<<blocks_for(s.count()), kThreads, 0, stream>>>(
                    y.as<T>(), dy.as<T>(), s.c, s.spatial(), y.batch_stride, dy.batch_stride, s.count(), act.kind,
                    act.slope));
  UNET_CUDA_CHECK_LAUNCH();
  if (dbias) {
    launch_channel_sums(dy, dbias, stream);
    UNET_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace unet
