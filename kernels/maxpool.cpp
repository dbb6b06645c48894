#include "kernels/maxpool.h"

#include <string>

namespace unet {

Shape maxpool_output_shape(const Shape& in) {
  Shape s = in;
  s.d = in.dims == 3 ? in.d / 2 : in.d;
  s.h = in.h / 2;
  s.w = in.w / 2;
  if (s.d < 1 || s.h < 1 || s.w < 1)
    throw std::invalid_argument("maxpool: input " + in.str() + " is too small to pool by 2");
  return s;
}

void maxpool_forward(const Tensor& x, const Tensor& y, uint8_t* argmax) {
  const Shape& in = x.shape;
  expect_shape("maxpool_forward", "y", y.shape, maxpool_output_shape(in));
  const Shape& out = y.shape;
  const int64_t zs = in.dims == 3 ? 2 : 1;  // window depth
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < in.n; ++n)
    for (int64_t c = 0; c < in.c; ++c) {
      const float* src = x.channel(n, c);
      float* dst = y.channel(n, c);
      uint8_t* arg = argmax + (n * out.c + c) * out.spatial();
      for (int64_t oz = 0; oz < out.d; ++oz)
        for (int64_t oy = 0; oy < out.h; ++oy)
          for (int64_t ox = 0; ox < out.w; ++ox) {
            float best = 0.f;
            uint8_t won = 0;
            bool first = true;
            for (int64_t z = oz * zs; z < oz * zs + zs; ++z)
              for (int64_t yy = 2 * oy; yy < 2 * oy + 2; ++yy)
                for (int64_t xx = 2 * ox; xx < 2 * ox + 2; ++xx) {
                  const float v = src[(z * in.h + yy) * in.w + xx];
                  if (first || v > best) {
                    best = v;
                    won = pool_offset(z, yy, xx, in.dims);
                    first = false;
                  }
                }
            const int64_t o = (oz * out.h + oy) * out.w + ox;
            dst[o] = best;
            arg[o] = won;
          }
    }
}

void maxpool_backward(const Tensor& dy, const uint8_t* argmax, const Tensor& dx, GradMode mode) {
  const Shape& in = dx.shape;
  expect_shape("maxpool_backward", "dy", dy.shape, maxpool_output_shape(in));
  const Shape& out = dy.shape;
  const int64_t zs = in.dims == 3 ? 2 : 1;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < in.n; ++n)
    for (int64_t c = 0; c < in.c; ++c) {
      const float* g = dy.channel(n, c);
      const uint8_t* arg = argmax + (n * out.c + c) * out.spatial();
      float* dst = dx.channel(n, c);
      for (int64_t z = 0; z < in.d; ++z)
        for (int64_t yy = 0; yy < in.h; ++yy)
          for (int64_t xx = 0; xx < in.w; ++xx) {
            const int64_t oz = z / zs, oy = yy / 2, ox = xx / 2;
            float v = 0.f;
            if (oz < out.d && oy < out.h && ox < out.w) {
              const int64_t o = (oz * out.h + oy) * out.w + ox;
              if (arg[o] == pool_offset(z, yy, xx, in.dims)) v = g[o];
            }
            float& d = dst[(z * in.h + yy) * in.w + xx];
            d = mode == GradMode::accumulate ? d + v : v;
          }
    }
}

}  // namespace unet
