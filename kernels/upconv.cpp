#include "kernels/upconv.h"

#include <cblas.h>

#include <algorithm>

#include "kernels/base/parallel.h"

namespace unet {
namespace {

constexpr int64_t kProductBudget = int64_t(4) << 20;  // floats in the GEMM product per chunk

struct Geometry {
  int64_t ci, co, d, h, w;
  PoolWindow win;
  int64_t taps() const { return win.taps(); }
  int64_t rows() const { return d * h; }  // input rows of w elements
  int64_t in_plane() const { return d * h * w; }
  int64_t chunk_rows() const {
    return std::max<int64_t>(1, std::min(rows(), kProductBudget / std::max<int64_t>(1, co * taps() * w)));
  }
  // Offset in an output channel plane of the output row that input row r's
  // taps `tap` to `tap + win.w - 1` go to (every win.w-th element of it).
  int64_t out_row(int64_t r, int tap) const { return window_offset(r / h, r % h, 0, tap, win, win.h * h, win.w * w); }
};

Geometry geometry(const Shape& in, int64_t co, PoolWindow win) {
  return {in.c, co, in.d, in.h, in.w, window_for(in, win)};
}

// Applies f(product row pointer, output row pointer) to every (co, tap, input row)
// of rows [r0, r1); one thread per output channel so writes never collide.
template <class F>
void each_row(const Geometry& g, int64_t r0, int64_t r1, float* product, float* out_sample, F f) {
  const int64_t len = (r1 - r0) * g.w, plane = g.in_plane() * g.taps();
#pragma omp parallel for schedule(static)
  for (int64_t co = 0; co < g.co; ++co)
    for (int tap = 0; tap < g.taps(); ++tap) {
      float* src = product + (co * g.taps() + tap) * len;
      const int first = tap - tap % g.win.w, c = tap % g.win.w;
      for (int64_t r = r0; r < r1; ++r, src += g.w) f(co, src, out_sample + co * plane + g.out_row(r, first) + c);
    }
}

}  // namespace

Shape upconv_output_shape(const Shape& in, int64_t out_channels, PoolWindow win) {
  win = window_for(in, win);
  Shape s = in;
  s.c = out_channels;
  s.d = win.d * in.d;
  s.h = win.h * in.h;
  s.w = win.w * in.w;
  return s;
}

int64_t upconv_workspace_floats(const Shape& in, int64_t out_channels, PoolWindow win) {
  const Geometry g = geometry(in, out_channels, win);
  return g.co * g.taps() * g.chunk_rows() * g.w;
}

int64_t upconv_macs(const Shape& in, int64_t out_channels, PoolWindow win) {
  const Geometry g = geometry(in, out_channels, win);
  return in.n * g.in_plane() * g.ci * g.co * g.taps();
}

void upconv_forward(const Tensor& x, const float* w, const float* bias, const Tensor& y, float* workspace,
                    PoolWindow win) {
  const Geometry g = geometry(x.shape, y.shape.c, win);
  expect_shape("upconv_forward", "y", y.shape, upconv_output_shape(x.shape, y.shape.c, win));
  const int64_t kdim = g.co * g.taps(), step = g.chunk_rows();
  for (int64_t n = 0; n < x.shape.n; ++n)
    for (int64_t r0 = 0; r0 < g.rows(); r0 += step) {
      const int64_t r1 = std::min(g.rows(), r0 + step), len = (r1 - r0) * g.w;
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kdim, len, g.ci, 1.f, w, kdim, x.sample(n) + r0 * g.w,
                  g.in_plane(), 0.f, workspace, len);
      each_row(g, r0, r1, workspace, y.sample(n), [&](int64_t co, const float* src, float* dst) {
        const float b = bias ? bias[co] : 0.f;
        for (int64_t i = 0; i < g.w; ++i) dst[g.win.w * i] = src[i] + b;
      });
    }
}

void upconv_backward(const Tensor& x, const float* w, const Tensor& dy, const Tensor& dx, float* dw, float* dbias,
                     GradMode mode, float* workspace, PoolWindow win) {
  const Geometry g = geometry(x.shape, dy.shape.c, win);
  expect_shape("upconv_backward", "dy", dy.shape, upconv_output_shape(x.shape, dy.shape.c, win));
  const bool want_dx = dx.data != nullptr;
  if (want_dx) expect_shape("upconv_backward", "dx", dx.shape, x.shape);
  const int64_t kdim = g.co * g.taps(), step = g.chunk_rows();
  for (int64_t n = 0; n < x.shape.n; ++n)
    for (int64_t r0 = 0; r0 < g.rows(); r0 += step) {
      const int64_t r1 = std::min(g.rows(), r0 + step), len = (r1 - r0) * g.w;
      // Gather dy into the product's layout: the adjoint of the scatter.
      each_row(g, r0, r1, workspace, dy.sample(n), [&](int64_t, float* dst, const float* src) {
        for (int64_t i = 0; i < g.w; ++i) dst[i] = src[g.win.w * i];
      });
      const float* in = x.sample(n) + r0 * g.w;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g.ci, kdim, len, 1.f, in, g.in_plane(), workspace, len,
                  1.f, dw, kdim);
      if (want_dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.ci, len, kdim, 1.f, w, kdim, workspace, len,
                    mode == GradMode::accumulate ? 1.f : 0.f, dx.sample(n) + r0 * g.w, g.in_plane());
    }
  if (dbias) add_channel_sums(dy, dbias);
}

}  // namespace unet
