#include "kernels/conv.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "kernels/base/parallel.h"

namespace unet {
namespace {

// Column buffers stay under this many floats (16 MiB): a 3D layer's full
// im2col matrix would take gigabytes.
constexpr int64_t kColumnBudget = int64_t(4) << 20;

// Everything the lowering needs, derived once from the shapes.
struct Geometry {
  int64_t ci, co, d, h, w;     // input
  int64_t od, oh, ow;          // output
  int64_t kd, k, pad_d, pad;   // kernel depth/size and padding
  int64_t taps() const { return kd * k * k; }
  int64_t rows() const { return od * oh; }  // output rows of ow elements
  int64_t in_plane() const { return d * h * w; }
  int64_t out_plane() const { return od * oh * ow; }
  bool pointwise() const { return taps() == 1; }  // 1x1: x itself is the column matrix
  int64_t chunk_rows() const {
    return std::max<int64_t>(1, std::min(rows(), kColumnBudget / std::max<int64_t>(1, ci * taps() * ow)));
  }
};

Geometry geometry(const Shape& in, int64_t out_channels, const ConvSpec& spec) {
  const int64_t k = spec.kernel;
  if (k < 1) throw std::invalid_argument("conv: kernel size " + std::to_string(k) + " must be >= 1");
  if (spec.padding == Padding::same && k % 2 == 0)
    throw std::invalid_argument("conv: \"same\" padding needs an odd kernel, got " + std::to_string(k));
  Geometry g{};
  g.ci = in.c;
  g.co = out_channels;
  g.d = in.d, g.h = in.h, g.w = in.w;
  g.k = k;
  g.kd = in.dims == 3 ? k : 1;
  g.pad = spec.padding == Padding::same ? k / 2 : 0;
  g.pad_d = in.dims == 3 ? g.pad : 0;
  g.od = g.d + 2 * g.pad_d - g.kd + 1;
  g.oh = g.h + 2 * g.pad - k + 1;
  g.ow = g.w + 2 * g.pad - k + 1;
  if (g.od < 1 || g.oh < 1 || g.ow < 1)
    throw std::invalid_argument("conv: input " + in.str() + " is smaller than the kernel " + std::to_string(k) +
                                " with \"valid\" padding");
  return g;
}

// For a tap offset c along W: the output columns [lo, hi) whose input column
// ox + c - pad lies inside the image.
inline void valid_columns(const Geometry& g, int64_t c, int64_t& lo, int64_t& hi) {
  lo = std::clamp<int64_t>(g.pad - c, 0, g.ow);
  hi = std::clamp<int64_t>(g.w + g.pad - c, lo, g.ow);
}

// cols[(ci * taps + tap), j] = x at the input position tap `tap` of output j,
// for the output rows [r0, r1).
void im2col(const Geometry& g, const float* x, int64_t r0, int64_t r1, float* cols) {
  const int64_t len = (r1 - r0) * g.ow, taps = g.taps();
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < g.ci * taps; ++row) {
    const int64_t ci = row / taps, tap = row % taps;
    const int64_t a = tap / (g.k * g.k), b = (tap / g.k) % g.k, c = tap % g.k;
    int64_t lo, hi;
    valid_columns(g, c, lo, hi);
    const float* plane = x + ci * g.in_plane();
    float* dst = cols + row * len;
    for (int64_t r = r0; r < r1; ++r, dst += g.ow) {
      const int64_t iz = r / g.oh + a - g.pad_d, iy = r % g.oh + b - g.pad;
      if (iz < 0 || iz >= g.d || iy < 0 || iy >= g.h) {
        std::memset(dst, 0, sizeof(float) * g.ow);
        continue;
      }
      const float* src = plane + (iz * g.h + iy) * g.w + c - g.pad;
      for (int64_t ox = 0; ox < lo; ++ox) dst[ox] = 0.f;
      for (int64_t ox = lo; ox < hi; ++ox) dst[ox] = src[ox];
      for (int64_t ox = hi; ox < g.ow; ++ox) dst[ox] = 0.f;
    }
  }
}

// The adjoint of im2col: dx += cols scattered back. One thread per input
// channel, so no two threads write the same element.
void col2im(const Geometry& g, const float* cols, int64_t r0, int64_t r1, float* dx) {
  const int64_t len = (r1 - r0) * g.ow, taps = g.taps();
#pragma omp parallel for schedule(static)
  for (int64_t ci = 0; ci < g.ci; ++ci) {
    float* plane = dx + ci * g.in_plane();
    for (int64_t tap = 0; tap < taps; ++tap) {
      const int64_t a = tap / (g.k * g.k), b = (tap / g.k) % g.k, c = tap % g.k;
      int64_t lo, hi;
      valid_columns(g, c, lo, hi);
      const float* src = cols + (ci * taps + tap) * len;
      for (int64_t r = r0; r < r1; ++r, src += g.ow) {
        const int64_t iz = r / g.oh + a - g.pad_d, iy = r % g.oh + b - g.pad;
        if (iz < 0 || iz >= g.d || iy < 0 || iy >= g.h) continue;
        float* dst = plane + (iz * g.h + iy) * g.w + c - g.pad;
        for (int64_t ox = lo; ox < hi; ++ox) dst[ox] += src[ox];
      }
    }
  }
}

void check_shapes(const char* op, const Geometry& g, const Tensor& x, const Shape& y) {
  Shape want = x.shape;
  want.c = g.co, want.d = g.od, want.h = g.oh, want.w = g.ow;
  expect_shape(op, "output", y, want);
}

}  // namespace

Shape conv_output_shape(const Shape& in, int64_t out_channels, const ConvSpec& spec) {
  const Geometry g = geometry(in, out_channels, spec);
  Shape s = in;
  s.c = out_channels, s.d = g.od, s.h = g.oh, s.w = g.ow;
  return s;
}

int64_t conv_workspace_floats(const Shape& in, int64_t out_channels, const ConvSpec& spec) {
  const Geometry g = geometry(in, out_channels, spec);
  return g.pointwise() ? 0 : g.ci * g.taps() * g.chunk_rows() * g.ow;
}

std::string conv_key(const Shape& in, int64_t out_channels, const ConvSpec& spec, ConvStrides strides) {
  const Shape out = conv_output_shape(in, out_channels, spec);
  return in.str() + ">" + std::to_string(out_channels) + " k" + std::to_string(spec.kernel) +
         (spec.padding == Padding::same ? " same" : " valid") + " strides " +
         std::to_string(strides.x ? strides.x : in.sample()) + "," + std::to_string(strides.y ? strides.y : out.sample()) +
         "," + std::to_string(strides.dy ? strides.dy : out.sample());
}

int64_t conv_macs(const Shape& in, int64_t out_channels, const ConvSpec& spec) {
  const Geometry g = geometry(in, out_channels, spec);
  return in.n * g.co * g.out_plane() * g.ci * g.taps();
}

void conv_forward(const Tensor& x, const float* w, const float* bias, const Tensor& y, const ConvSpec& spec,
                  float* workspace) {
  const Geometry g = geometry(x.shape, y.shape.c, spec);
  check_shapes("conv_forward", g, x, y.shape);
  const int64_t kdim = g.ci * g.taps(), step = g.chunk_rows();
  for (int64_t n = 0; n < x.shape.n; ++n) {
    for (int64_t r0 = 0; r0 < g.rows(); r0 += step) {
      const int64_t r1 = std::min(g.rows(), r0 + step), len = (r1 - r0) * g.ow;
      float* out = y.sample(n) + r0 * g.ow;
      if (g.pointwise()) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.co, len, g.ci, 1.f, w, g.ci,
                    x.sample(n) + r0 * g.ow, g.in_plane(), 0.f, out, g.out_plane());
      } else {
        im2col(g, x.sample(n), r0, r1, workspace);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g.co, len, kdim, 1.f, w, kdim, workspace, len,
                    0.f, out, g.out_plane());
      }
    }
  }
  if (!bias) return;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < x.shape.n; ++n)
    for (int64_t c = 0; c < g.co; ++c) {
      float* p = y.channel(n, c);
      for (int64_t i = 0; i < g.out_plane(); ++i) p[i] += bias[c];
    }
}

void conv_backward(const Tensor& x, const float* w, const Tensor& dy, const Tensor& dx, float* dw, float* dbias,
                   const ConvSpec& spec, GradMode mode, float* workspace) {
  const Geometry g = geometry(x.shape, dy.shape.c, spec);
  check_shapes("conv_backward", g, x, dy.shape);
  const bool want_dx = dx.data != nullptr;
  if (want_dx) expect_shape("conv_backward", "dx", dx.shape, x.shape);
  const int64_t kdim = g.ci * g.taps(), step = g.chunk_rows();
  for (int64_t n = 0; n < x.shape.n; ++n) {
    if (want_dx && mode == GradMode::overwrite) std::memset(dx.sample(n), 0, sizeof(float) * x.shape.sample());
    for (int64_t r0 = 0; r0 < g.rows(); r0 += step) {
      const int64_t r1 = std::min(g.rows(), r0 + step), len = (r1 - r0) * g.ow;
      const float* grad = dy.sample(n) + r0 * g.ow;
      if (g.pointwise()) {
        const float* in = x.sample(n) + r0 * g.ow;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g.co, g.ci, len, 1.f, grad, g.out_plane(), in,
                    g.in_plane(), 1.f, dw, g.ci);
        if (want_dx)
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, g.ci, len, g.co, 1.f, w, g.ci, grad, g.out_plane(),
                      1.f, dx.sample(n) + r0 * g.ow, g.in_plane());
        continue;
      }
      im2col(g, x.sample(n), r0, r1, workspace);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g.co, kdim, len, 1.f, grad, g.out_plane(), workspace,
                  len, 1.f, dw, kdim);
      if (want_dx) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kdim, len, g.co, 1.f, w, kdim, grad, g.out_plane(),
                    0.f, workspace, len);
        col2im(g, workspace, r0, r1, dx.sample(n));
      }
    }
  }
  if (dbias) add_channel_sums(dy, dbias);
}

}  // namespace unet
