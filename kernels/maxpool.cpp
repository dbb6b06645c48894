#include "kernels/maxpool.h"

#include <algorithm>
#include <string>

namespace unet {

Shape maxpool_output_shape(const Shape& in, PoolWindow win) {
  win = window_for(in, win);
  Shape s = in;
  s.d = in.d / win.d;
  s.h = in.h / win.h;
  s.w = in.w / win.w;
  if (s.d < 1 || s.h < 1 || s.w < 1)
    throw std::invalid_argument("maxpool: input " + in.str() + " is too small to pool by " + std::to_string(win.w) +
                                "x" + std::to_string(win.h) + (in.dims == 3 ? "x" + std::to_string(win.d) : ""));
  return s;
}

namespace {

// Pointers to the win.d * win.h input rows of the windows of output row
// (oz, oy), in argmax order: row r holds window elements r * win.w + dx.
template <class T>
void window_rows(T* plane, const Shape& in, PoolWindow win, int64_t oz, int64_t oy, T* rows[4]) {
  for (int dz = 0; dz < win.d; ++dz)
    for (int dy = 0; dy < win.h; ++dy) rows[dz * win.h + dy] = plane + ((oz * win.d + dz) * in.h + win.h * oy + dy) * in.w;
}

// One output row of windows W (1 or 2) wide over R (1, 2 or 4) input rows.
// Both are template arguments so that the loops unroll into the fixed-stride
// code the isotropic kernel always was: with runtime sizes the pooling ran at
// half its speed.
template <int W, int R>
void pool_row(const float* const* input_rows, int64_t ow, float* dst, uint8_t* arg) {
  const float* rows[R];  // a local copy: the byte stores to arg may alias the caller's array
  std::copy(input_rows, input_rows + R, rows);
  for (int64_t ox = 0; ox < ow; ++ox) {
    float best = rows[0][W * ox];
    uint8_t won = 0;
    for (int k = 1; k < R * W; ++k) {
      const float v = rows[k / W][W * ox + k % W];
      if (v > best) best = v, won = static_cast<uint8_t>(k);  // strict: ties go to the first
    }
    dst[ox] = best;
    arg[ox] = won;
  }
}

template <int W, int R>
void unpool_row(float* const* input_rows, int64_t ow, const float* g, const uint8_t* arg, bool add) {
  float* rows[R];
  std::copy(input_rows, input_rows + R, rows);
  for (int r = 0; r < R; ++r)  // row by row: each written front to back, which vectorizes
    for (int64_t ox = 0; ox < ow; ++ox)
      for (int dx = 0; dx < W; ++dx) {
        float& d = rows[r][W * ox + dx];
        const float v = arg[ox] == r * W + dx ? g[ox] : 0.f;
        d = add ? d + v : v;
      }
}

// The instance for a window: W = win.w, R = win.d * win.h.
using PoolRow = void (*)(const float* const*, int64_t, float*, uint8_t*);
using UnpoolRow = void (*)(float* const*, int64_t, const float*, const uint8_t*, bool);

PoolRow pool_row_for(PoolWindow win) {
  const int r = win.d * win.h;
  if (win.w == 2) return r == 4 ? pool_row<2, 4> : r == 2 ? pool_row<2, 2> : pool_row<2, 1>;
  return r == 4 ? pool_row<1, 4> : r == 2 ? pool_row<1, 2> : pool_row<1, 1>;
}

UnpoolRow unpool_row_for(PoolWindow win) {
  const int r = win.d * win.h;
  if (win.w == 2) return r == 4 ? unpool_row<2, 4> : r == 2 ? unpool_row<2, 2> : unpool_row<2, 1>;
  return r == 4 ? unpool_row<1, 4> : r == 2 ? unpool_row<1, 2> : unpool_row<1, 1>;
}

}  // namespace

void maxpool_forward(const Tensor& x, const Tensor& y, uint8_t* argmax, PoolWindow window) {
  const Shape& in = x.shape;
  const PoolWindow win = window_for(in, window);
  expect_shape("maxpool_forward", "y", y.shape, maxpool_output_shape(in, win));
  const Shape& out = y.shape;
  const PoolRow row = pool_row_for(win);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < in.n; ++n)
    for (int64_t c = 0; c < in.c; ++c) {
      const float* src = x.channel(n, c);
      float* dst = y.channel(n, c);
      uint8_t* arg = argmax + (n * out.c + c) * out.spatial();
      for (int64_t oz = 0; oz < out.d; ++oz)
        for (int64_t oy = 0; oy < out.h; ++oy) {
          const float* rows[4];
          window_rows(src, in, win, oz, oy, rows);
          const int64_t o = (oz * out.h + oy) * out.w;
          row(rows, out.w, dst + o, arg + o);
        }
    }
}

// Every covered input element belongs to exactly one window, so visiting the
// windows writes each once: a gather through argmax without atomics. Elements
// of a dropped remainder get zero.
void maxpool_backward(const Tensor& dy, const uint8_t* argmax, const Tensor& dx, GradMode mode, PoolWindow window) {
  const Shape& in = dx.shape;
  const PoolWindow win = window_for(in, window);
  expect_shape("maxpool_backward", "dy", dy.shape, maxpool_output_shape(in, win));
  const Shape& out = dy.shape;
  const bool add = mode == GradMode::accumulate;
  const bool remainder = in.w % win.w || in.h % win.h || in.d % win.d;
  const UnpoolRow row = unpool_row_for(win);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < in.n; ++n)
    for (int64_t c = 0; c < in.c; ++c) {
      const float* g = dy.channel(n, c);
      const uint8_t* arg = argmax + (n * out.c + c) * out.spatial();
      float* plane = dx.channel(n, c);
      if (!add && remainder)
        for (int64_t i = 0; i < in.spatial(); ++i) plane[i] = 0.f;
      for (int64_t oz = 0; oz < out.d; ++oz)
        for (int64_t oy = 0; oy < out.h; ++oy) {
          float* rows[4];
          window_rows(plane, in, win, oz, oy, rows);
          const int64_t o = (oz * out.h + oy) * out.w;
          row(rows, out.w, g + o, arg + o, add);
        }
    }
}

}  // namespace unet
