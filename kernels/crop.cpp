#include "kernels/crop.h"

#include <cstring>
#include <string>

namespace unet {
namespace {

struct Offsets {
  int64_t z, y, x;
};

Offsets centre(const char* op, const Shape& big, const Shape& small) {
  if (big.n != small.n || big.c != small.c || big.dims != small.dims || small.d > big.d || small.h > big.h ||
      small.w > big.w)
    throw std::invalid_argument(std::string(op) + ": cannot crop " + big.str() + " to " + small.str());
  return {(big.d - small.d) / 2, (big.h - small.h) / 2, (big.w - small.w) / 2};
}

// f(big row, small row) for every row of the cropped region of every channel.
template <class F>
void each_row(const Tensor& big, const Tensor& small, Offsets o, F f) {
  const Shape& b = big.shape;
  const Shape& s = small.shape;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c)
      for (int64_t z = 0; z < s.d; ++z)
        for (int64_t y = 0; y < s.h; ++y)
          f(big.channel(n, c) + ((z + o.z) * b.h + y + o.y) * b.w + o.x, small.channel(n, c) + (z * s.h + y) * s.w);
}

}  // namespace

void crop_forward(const Tensor& x, const Tensor& y) {
  const Offsets o = centre("crop_forward", x.shape, y.shape);
  const int64_t w = y.shape.w;
  each_row(x, y, o, [w](float* big, float* small) { std::memcpy(small, big, sizeof(float) * w); });
}

void crop_backward(const Tensor& dy, const Tensor& dx, GradMode mode) {
  const Offsets o = centre("crop_backward", dx.shape, dy.shape);
  if (mode == GradMode::overwrite)
    for (int64_t n = 0; n < dx.shape.n; ++n) std::memset(dx.sample(n), 0, sizeof(float) * dx.shape.sample());
  const int64_t w = dy.shape.w;
  each_row(dx, dy, o, [w](float* big, float* small) {
    for (int64_t i = 0; i < w; ++i) big[i] += small[i];
  });
}

}  // namespace unet
