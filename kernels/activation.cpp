#include "kernels/activation.h"

#include "kernels/base/parallel.h"

namespace unet {

void bias_act_forward(const Tensor& y, const float* bias, ActivationSpec act) {
  const Shape& s = y.shape;
  const int64_t plane = s.spatial();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c) {
      float* p = y.channel(n, c);
      const float b = bias ? bias[c] : 0.f;
      for (int64_t i = 0; i < plane; ++i) p[i] = activate(p[i] + b, act.kind, act.slope);
    }
}

void bias_act_backward(const Tensor& y, const Tensor& dy, float* dbias, ActivationSpec act) {
  expect_shape("bias_act_backward", "dy", dy.shape, y.shape);
  const Shape& s = y.shape;
  const int64_t plane = s.spatial();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c) {
      const float* py = y.channel(n, c);
      float* pd = dy.channel(n, c);
      for (int64_t i = 0; i < plane; ++i) pd[i] *= activate_grad(py[i], act.kind, act.slope);
    }
  if (dbias) add_channel_sums(dy, dbias);
}

}  // namespace unet
