#include "io/data/synthetic.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>

namespace unet {
namespace {

// Separable Gaussian blur along each spatial axis, edges clamped.
void blur(std::vector<float>& v, int64_t d, int64_t h, int64_t w, double sigma) {
  if (sigma <= 0) return;
  const int r = static_cast<int>(std::ceil(3 * sigma));
  std::vector<float> k(2 * r + 1);
  double sum = 0;
  for (int i = -r; i <= r; ++i) sum += k[i + r] = static_cast<float>(std::exp(-0.5 * i * i / (sigma * sigma)));
  for (float& x : k) x = static_cast<float>(x / sum);
  const int64_t dims[3] = {d, h, w}, strides[3] = {h * w, w, 1};
  std::vector<float> out(v.size());
  for (int axis = 0; axis < 3; ++axis) {
    const int64_t n = dims[axis], stride = strides[axis];
    if (n == 1) continue;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
      const int64_t pos = (i / stride) % n;
      double acc = 0;
      for (int t = -r; t <= r; ++t) {
        const int64_t p = std::clamp<int64_t>(pos + t, 0, n - 1);
        acc += k[t + r] * v[i + (p - pos) * stride];
      }
      out[i] = static_cast<float>(acc);
    }
    v.swap(out);
  }
}

}  // namespace

std::pair<Volume, Volume> synthetic_em(const SyntheticSpec& s, int64_t index) {
  if ((s.dims != 2 && s.dims != 3) || s.size < 8 || s.cells < 2)
    throw std::invalid_argument("synthetic data: dims 2 or 3, size >= 8 and at least 2 cells, got dims " +
                                std::to_string(s.dims) + ", size " + std::to_string(s.size) + ", " +
                                std::to_string(s.cells) + " cells");
  std::mt19937_64 rng(s.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(index));
  const int64_t w = s.size, h = s.size, d = s.dims == 3 ? s.size : 1;
  std::uniform_real_distribution<double> u(0, 1);
  struct Seed {
    double z, y, x, brightness;
  };
  std::vector<Seed> seeds(s.cells);
  for (Seed& c : seeds) c = {u(rng) * d, u(rng) * h, u(rng) * w, 150 + 80 * u(rng)};

  Volume image, label;
  for (Volume* v : {&image, &label}) {
    v->d = d, v->h = h, v->w = w, v->c = 1;
    v->dims = s.dims;
    v->full_scale = 255;
    v->voxels.assign(static_cast<size_t>(d * h * w), 0.f);
  }
  image.datatype = "float32";
  label.datatype = "uint8";
  // A voxel is membrane when its two nearest seeds are almost equidistant: the
  // distance to the bisecting plane, (d2^2 - d1^2) / (2 |s1 - s2|), is below the half-width.
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t z = 0; z < d; ++z)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        double best = std::numeric_limits<double>::max(), second = best;
        int bi = 0, si = 0;
        for (int i = 0; i < s.cells; ++i) {
          const double dz = z + 0.5 - seeds[i].z, dy = y + 0.5 - seeds[i].y, dx = x + 0.5 - seeds[i].x;
          const double dist = dz * dz + dy * dy + dx * dx;
          if (dist < best) second = best, si = bi, best = dist, bi = i;
          else if (dist < second) second = dist, si = i;
        }
        const Seed &a = seeds[bi], &b = seeds[si];
        const double sep = std::sqrt((a.z - b.z) * (a.z - b.z) + (a.y - b.y) * (a.y - b.y) + (a.x - b.x) * (a.x - b.x));
        const bool membrane = (second - best) / (2 * std::max(sep, 1e-9)) < s.membrane;
        const size_t i = static_cast<size_t>((z * h + y) * w + x);
        label.voxels[i] = membrane ? 255.f : 0.f;
        // Interiors carry a faint texture so that brightness alone does not give the answer away.
        const double texture = 12 * std::sin(0.7 * x + 1.3 * a.x) * std::cos(0.5 * y + 0.9 * a.y);
        image.voxels[i] = static_cast<float>(membrane ? 55.0 : a.brightness + texture);
      }
  blur(image.voxels, d, h, w, s.blur);
  std::normal_distribution<float> noise(0.f, static_cast<float>(s.noise));
  for (float& v : image.voxels) v = std::clamp(v + noise(rng), 0.f, 255.f);
  return {std::move(image), std::move(label)};
}

}  // namespace unet
