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

namespace {

// Pointers to the 2 (2D) or 4 (3D) input rows of the windows of output row
// (oz, oy), in argmax order: row k holds offsets 2k and 2k + 1.
template <class T>
int window_rows(T* plane, const Shape& in, int64_t oz, int64_t oy, T* rows[4]) {
  const int depth = in.dims == 3 ? 2 : 1;
  for (int dz = 0; dz < depth; ++dz)
    for (int dy = 0; dy < 2; ++dy) rows[dz * 2 + dy] = plane + ((oz * depth + dz) * in.h + 2 * oy + dy) * in.w;
  return 2 * depth;
}

}  // namespace

void maxpool_forward(const Tensor& x, const Tensor& y, uint8_t* argmax) {
  const Shape& in = x.shape;
  expect_shape("maxpool_forward", "y", y.shape, maxpool_output_shape(in));
  const Shape& out = y.shape;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < in.n; ++n)
    for (int64_t c = 0; c < in.c; ++c) {
      const float* src = x.channel(n, c);
      float* dst = y.channel(n, c);
      uint8_t* arg = argmax + (n * out.c + c) * out.spatial();
      for (int64_t oz = 0; oz < out.d; ++oz)
        for (int64_t oy = 0; oy < out.h; ++oy) {
          const float* rows[4];
          const int nrows = window_rows(src, in, oz, oy, rows);
          const int64_t o = (oz * out.h + oy) * out.w;
          for (int64_t ox = 0; ox < out.w; ++ox) {
            float best = rows[0][2 * ox];
            uint8_t won = 0;
            for (int k = 1; k < 2 * nrows; ++k) {
              const float v = rows[k >> 1][2 * ox + (k & 1)];
              if (v > best) best = v, won = static_cast<uint8_t>(k);  // strict: ties go to the first
            }
            dst[o + ox] = best;
            arg[o + ox] = won;
          }
        }
    }
}

// Every covered input element belongs to exactly one window, so visiting the
// windows writes each once: a gather through argmax without atomics. Elements
// of dropped odd rows/columns get zero.
void maxpool_backward(const Tensor& dy, const uint8_t* argmax, const Tensor& dx, GradMode mode) {
  const Shape& in = dx.shape;
  expect_shape("maxpool_backward", "dy", dy.shape, maxpool_output_shape(in));
  const Shape& out = dy.shape;
  const bool add = mode == GradMode::accumulate;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < in.n; ++n)
    for (int64_t c = 0; c < in.c; ++c) {
      const float* g = dy.channel(n, c);
      const uint8_t* arg = argmax + (n * out.c + c) * out.spatial();
      float* plane = dx.channel(n, c);
      if (!add && (in.w % 2 || in.h % 2 || (in.dims == 3 && in.d % 2)))
        for (int64_t i = 0; i < in.spatial(); ++i) plane[i] = 0.f;  // the dropped remainder
      for (int64_t oz = 0; oz < out.d; ++oz)
        for (int64_t oy = 0; oy < out.h; ++oy) {
          float* rows[4];
          const int nrows = window_rows(plane, in, oz, oy, rows);
          const int64_t o = (oz * out.h + oy) * out.w;
          for (int64_t ox = 0; ox < out.w; ++ox)
            for (int k = 0; k < 2 * nrows; ++k) {
              float& d = rows[k >> 1][2 * ox + (k & 1)];
              const float v = arg[o + ox] == k ? g[o + ox] : 0.f;
              d = add ? d + v : v;
            }
        }
    }
}

}  // namespace unet
