#include "engine/evaluate/surface_distance.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace unet {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// One axis of the transform: f holds squared distances at n samples `step`
// apart; the lower envelope of parabolas (p - q)^2 h^2 + f(q) replaces them.
void transform_line(double* f, int64_t n, int64_t stride, double h, std::vector<double>& d, std::vector<int64_t>& v,
                    std::vector<double>& z) {
  d.resize(n), v.resize(n), z.resize(n + 1);
  int64_t k = -1;
  for (int64_t q = 0; q < n; ++q) {
    const double fq = f[q * stride];
    if (fq == kInf) continue;
    const double xq = q * h;
    double s = -kInf;
    while (k >= 0) {
      const double xv = v[k] * h;
      s = ((fq + xq * xq) - (f[v[k] * stride] + xv * xv)) / (2 * (xq - xv));
      if (s > z[k]) break;
      --k;
    }
    ++k;
    v[k] = q;
    z[k] = k == 0 ? -kInf : s;
    z[k + 1] = kInf;
  }
  if (k < 0) return;  // no finite sample on this line: it stays infinite
  int64_t j = 0;
  for (int64_t q = 0; q < n; ++q) {
    while (z[j + 1] < q * h) ++j;
    const double dx = (q - v[j]) * h;
    d[q] = dx * dx + f[v[j] * stride];
  }
  for (int64_t q = 0; q < n; ++q) f[q * stride] = d[q];
}

std::vector<uint8_t> surface(const std::vector<uint8_t>& m, std::array<int64_t, 3> dims) {
  const int64_t D = dims[0], H = dims[1], W = dims[2];
  std::vector<uint8_t> s(m.size(), 0);
  for (int64_t z = 0; z < D; ++z)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const int64_t i = (z * H + y) * W + x;
        if (!m[i]) continue;
        auto out = [&](int64_t zz, int64_t yy, int64_t xx) {
          return zz < 0 || yy < 0 || xx < 0 || zz >= D || yy >= H || xx >= W || !m[(zz * H + yy) * W + xx];
        };
        // In 2D (D == 1) the z neighbours would all be "outside": only in-plane ones count.
        const bool edge = out(z, y - 1, x) || out(z, y + 1, x) || out(z, y, x - 1) || out(z, y, x + 1) ||
                          (D > 1 && (out(z - 1, y, x) || out(z + 1, y, x)));
        s[i] = edge;
      }
  return s;
}

// Distances from every surface voxel of `from` to the surface `to_dt` was built from.
std::vector<double> directed(const std::vector<uint8_t>& from, const std::vector<double>& to_dt) {
  std::vector<double> out;
  for (size_t i = 0; i < from.size(); ++i)
    if (from[i]) out.push_back(std::sqrt(to_dt[i]));
  return out;
}

double percentile(std::vector<double> v, double p) {  // linear interpolation, as numpy's default
  std::sort(v.begin(), v.end());
  const double pos = p / 100 * double(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos)), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - double(lo));
}

}  // namespace

std::vector<double> squared_distance_transform(const std::vector<uint8_t>& seed, std::array<int64_t, 3> dims,
                                               std::array<double, 3> spacing) {
  const int64_t D = dims[0], H = dims[1], W = dims[2];
  std::vector<double> f(seed.size());
  for (size_t i = 0; i < seed.size(); ++i) f[i] = seed[i] ? 0.0 : kInf;
  std::vector<double> d;
  std::vector<int64_t> v;
  std::vector<double> z;
  for (int64_t zz = 0; zz < D; ++zz)
    for (int64_t y = 0; y < H; ++y) transform_line(&f[(zz * H + y) * W], W, 1, spacing[2], d, v, z);
  for (int64_t zz = 0; zz < D; ++zz)
    for (int64_t x = 0; x < W; ++x) transform_line(&f[zz * H * W + x], H, W, spacing[1], d, v, z);
  if (D > 1)
    for (int64_t i = 0; i < H * W; ++i) transform_line(&f[i], D, H * W, spacing[0], d, v, z);
  return f;
}

SegmentationScores score_masks(const std::vector<uint8_t>& p, const std::vector<uint8_t>& r,
                               std::array<int64_t, 3> dims, std::array<double, 3> spacing) {
  double tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    tp += p[i] && r[i];
    fp += p[i] && !r[i];
    fn += !p[i] && r[i];
  }
  SegmentationScores s;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (tp + fp + fn == 0) return {nan, nan, nan, nan, nan, nan};
  s.dice = 2 * tp / (2 * tp + fp + fn);
  s.iou = tp / (tp + fp + fn);
  s.precision = tp + fp > 0 ? tp / (tp + fp) : nan;
  s.recall = tp + fn > 0 ? tp / (tp + fn) : nan;
  if (tp + fp == 0 || tp + fn == 0) {  // one mask empty: no surface to reach
    s.hausdorff = s.hd95 = kInf;
    return s;
  }
  const std::vector<uint8_t> sp = surface(p, dims), sr = surface(r, dims);
  const std::vector<double> ab = directed(sp, squared_distance_transform(sr, dims, spacing)),
                            ba = directed(sr, squared_distance_transform(sp, dims, spacing));
  s.hausdorff = std::max(*std::max_element(ab.begin(), ab.end()), *std::max_element(ba.begin(), ba.end()));
  s.hd95 = std::max(percentile(ab, 95), percentile(ba, 95));
  return s;
}

}  // namespace unet
