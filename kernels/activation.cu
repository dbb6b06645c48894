// CUDA launchers for bias + activation; the arithmetic is activation.h's.
#include "engine/cuda_check.h"
#include "kernels/activation.h"
#include "kernels/cuda_launch.h"

namespace unet {
namespace {

__global__ void bias_act_forward_kernel(float* y, const float* bias, int64_t channels, int64_t plane,
                                        int64_t batch_stride, int64_t total, Activation kind,
                                        float slope) {
  UNET_GRID_LOOP(i, total) {
    const int64_t n = i / (channels * plane), r = i % (channels * plane), c = r / plane;
    float* p = y + n * batch_stride + r;
    *p = activate(*p + (bias ? bias[c] : 0.f), kind, slope);
  }
}

__global__ void act_backward_kernel(const float* y, float* dy, int64_t channels, int64_t plane,
                                    int64_t y_stride, int64_t dy_stride, int64_t total, Activation kind,
                                    float slope) {
  UNET_GRID_LOOP(i, total) {
    const int64_t n = i / (channels * plane), r = i % (channels * plane);
    dy[n * dy_stride + r] *= activate_grad(y[n * y_stride + r], kind, slope);
  }
}

}  // namespace

void bias_act_forward_cuda(const Tensor& y, const float* bias, ActivationSpec act, Stream stream) {
  const Shape& s = y.shape;
  if (s.count() == 0) return;
  bias_act_forward_kernel<<<blocks_for(s.count()), kThreads, 0, stream>>>(
      y.data, bias, s.c, s.spatial(), y.batch_stride, s.count(), act.kind, act.slope);
  UNET_CUDA_CHECK_LAUNCH();
}

void bias_act_backward_cuda(const Tensor& y, const Tensor& dy, float* dbias, ActivationSpec act,
                            Stream stream) {
  expect_shape("bias_act_backward_cuda", "dy", dy.shape, y.shape);
  const Shape& s = y.shape;
  if (s.count() == 0) return;
  act_backward_kernel<<<blocks_for(s.count()), kThreads, 0, stream>>>(
      y.data, dy.data, s.c, s.spatial(), y.batch_stride, dy.batch_stride, s.count(), act.kind, act.slope);
  UNET_CUDA_CHECK_LAUNCH();
  if (dbias) {
    channel_sum_kernel<<<static_cast<unsigned>(s.c), kThreads, 0, stream>>>(dy.data, dbias, s.n, s.spatial(),
                                                                            dy.batch_stride);
    UNET_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace unet
