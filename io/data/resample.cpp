#include "io/data/resample.h"

#include <algorithm>
#include <cmath>

namespace unet {
namespace {

// Where output voxel i of m samples an axis of n: the two input voxels and the
// weight of the second.
struct Tap {
  int64_t i0, i1;
  float t;
};

std::vector<Tap> taps(int64_t n, int64_t m) {
  std::vector<Tap> out(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) {
    const double x = std::clamp((double(i) + 0.5) * double(n) / double(m) - 0.5, 0.0, double(n - 1));
    const int64_t i0 = std::min<int64_t>(static_cast<int64_t>(x), n - 1);
    out[i] = {i0, std::min(i0 + 1, n - 1), static_cast<float>(x - double(i0))};
  }
  return out;
}

// Linear along one axis of a [outer, n, inner] array, to [outer, m, inner].
std::vector<float> along(const std::vector<float>& in, int64_t outer, int64_t n, int64_t inner, int64_t m) {
  if (m == n) return in;
  const std::vector<Tap> tap = taps(n, m);
  std::vector<float> out(static_cast<size_t>(outer * m * inner));
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < m; ++i) {
      const float* a = in.data() + (o * n + tap[i].i0) * inner;
      const float* b = in.data() + (o * n + tap[i].i1) * inner;
      float* y = out.data() + (o * m + i) * inner;
      const float t = tap[i].t;
      for (int64_t k = 0; k < inner; ++k) y[k] = a[k] + t * (b[k] - a[k]);
    }
  return out;
}

}  // namespace

bool same_spacing(const Spacing& spacing, const Spacing& target, int dims) {
  for (int i = 0; i < (dims == 3 ? 3 : 2); ++i)
    if (target[i] > 0 && std::fabs(spacing[i] - target[i]) > 1e-3 * std::max(spacing[i], target[i])) return false;
  return true;
}

std::array<int64_t, 3> resampled_grid(const std::array<int64_t, 3>& grid, const Spacing& spacing,
                                      const Spacing& target, int dims) {
  std::array<int64_t, 3> out = grid;
  for (int a = dims == 3 ? 0 : 1; a < 3; ++a)  // D, H, W <- z, y, x
    if (target[2 - a] > 0) out[a] = std::max<int64_t>(1, std::llround(double(grid[a]) * spacing[2 - a] / target[2 - a]));
  return out;
}

std::vector<float> resample_linear(const std::vector<float>& in, int64_t channels, const std::array<int64_t, 3>& from,
                                   const std::array<int64_t, 3>& to) {
  const auto [d, h, w] = from;
  const auto [D, H, W] = to;
  std::vector<float> x = along(in, channels * d * h, w, 1, W);
  x = along(x, channels * d, h, W, H);
  return along(x, channels, d, H * W, D);
}

std::vector<int32_t> resample_labels(const std::vector<int32_t>& in, const std::array<int64_t, 3>& from,
                                     const std::array<int64_t, 3>& to) {
  if (from == to) return in;
  // Plain variables, not structured bindings: C++17 lets no OpenMP region (clang) capture those.
  const int64_t d = from[0], h = from[1], w = from[2], D = to[0], H = to[1], W = to[2];
  const std::vector<Tap> tz = taps(d, D), ty = taps(h, H), tx = taps(w, W);
  std::vector<int32_t> out(static_cast<size_t>(D * H * W));
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t z = 0; z < D; ++z)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        // The eight neighbours' values and weights, summed per value.
        int32_t value[8];
        float weight[8];
        int distinct = 0;
        for (int k = 0; k < 8; ++k) {
          const Tap &a = tz[z], &b = ty[y], &c = tx[x];
          const float wgt = (k & 4 ? a.t : 1 - a.t) * (k & 2 ? b.t : 1 - b.t) * (k & 1 ? c.t : 1 - c.t);
          const int64_t at = ((k & 4 ? a.i1 : a.i0) * h + (k & 2 ? b.i1 : b.i0)) * w + (k & 1 ? c.i1 : c.i0);
          const int32_t v = in[at];
          int j = 0;
          while (j < distinct && value[j] != v) ++j;
          if (j == distinct) value[distinct] = v, weight[distinct++] = 0.f;
          weight[j] += wgt;
        }
        int best = 0;
        for (int j = 1; j < distinct; ++j)
          if (weight[j] > weight[best] || (weight[j] == weight[best] && value[j] < value[best])) best = j;
        out[(z * H + y) * W + x] = value[best];
      }
  return out;
}

Volume resample_image(const Volume& v, const Spacing& target) {
  Volume out = v;
  const std::array<int64_t, 3> from = v.grid(), to = resampled_grid(from, v.spacing, target, v.dims);
  out.voxels = resample_linear(v.voxels, v.c, from, to);
  out.d = to[0], out.h = to[1], out.w = to[2];
  out.nifti = nullptr;
  for (int a = 0; a < 3; ++a) {  // axis a: x, y, z <- W, H, D
    const double scale = double(from[2 - a]) / double(to[2 - a]);
    out.spacing[a] = v.spacing[a] * scale;
    // Output voxel 0's centre is input coordinate (scale - 1) / 2 along this axis.
    for (int r = 0; r < 3; ++r) {
      out.affine[r * 4 + 3] += v.affine[r * 4 + a] * (scale - 1) / 2;
      out.affine[r * 4 + a] = v.affine[r * 4 + a] * scale;
    }
  }
  return out;
}

}  // namespace unet
