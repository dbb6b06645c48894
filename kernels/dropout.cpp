#include "kernels/dropout.h"

namespace unet {
namespace {

// out = in * factor(logical index); in and out may be the same buffer.
void apply_mask(const Tensor& in, const Tensor& out, const DropoutSpec& spec_in) {
  const DropoutSpec spec = spec_in;  // a local copy: stores to out cannot alias it, so the loop vectorizes
  const Shape& s = in.shape;
  const int64_t per_sample = s.sample();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c) {
      const float* x = in.channel(n, c);
      float* y = out.channel(n, c);
      const uint64_t base = static_cast<uint64_t>((spec.first_sample + n) * per_sample + c * s.spatial());
      for (int64_t i = 0; i < s.spatial(); ++i) y[i] = x[i] * dropout_factor(spec, base + static_cast<uint64_t>(i));
    }
}

void check(const char* op, const Shape& a, const Shape& b, const DropoutSpec& spec) {
  expect_shape(op, "output", b, a);
  if (!(spec.rate >= 0.f && spec.rate < 1.f))
    throw std::invalid_argument(std::string(op) + ": rate " + std::to_string(spec.rate) + " outside [0, 1)");
}

}  // namespace

void dropout_forward(const Tensor& x, const Tensor& y, const DropoutSpec& spec) {
  check("dropout_forward", x.shape, y.shape, spec);
  apply_mask(x, y, spec);
}

// y = x * f with f fixed, so dx = dy * f: the same mask applied to the gradient.
void dropout_backward(const Tensor& dy, const Tensor& dx, const DropoutSpec& spec) {
  check("dropout_backward", dy.shape, dx.shape, spec);
  apply_mask(dy, dx, spec);
}

}  // namespace unet
