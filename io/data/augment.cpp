// Augmentation: spatial transforms on image + label together, then intensity
// transforms on the image alone.
#include "io/data/augment.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace unet {
namespace {

constexpr double kPi = 3.14159265358979323846;

bool chance(std::mt19937_64& rng, double p) {
  // The draw is made only when it can matter, so that p = 0 consumes nothing.
  return p > 0 && std::uniform_real_distribution<double>(0, 1)(rng) < p;
}
double uniform(std::mt19937_64& rng, double lo, double hi) {
  return lo == hi ? lo : std::uniform_real_distribution<double>(lo, hi)(rng);
}

// Moves voxels by an index map shared by image channels and label.
template <class Map>
void permute(Sample& s, int64_t d, int64_t h, int64_t w, Map src_of) {
  const int64_t n = d * h * w, old = s.spatial();
  std::vector<int64_t> from(n);
  for (int64_t z = 0; z < d; ++z)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) from[(z * h + y) * w + x] = src_of(z, y, x);
  std::vector<float> image(s.c * n);
  for (int64_t c = 0; c < s.c; ++c)
    for (int64_t i = 0; i < n; ++i) image[c * n + i] = s.image[c * old + from[i]];
  s.image.swap(image);
  if (s.labelled()) {
    std::vector<int32_t> label(n);
    for (int64_t i = 0; i < n; ++i) label[i] = s.label[from[i]];
    s.label.swap(label);
  }
  s.d = d, s.h = h, s.w = w;
}

// 3x3 products over (z, y, x).
std::array<double, 9> mul(const std::array<double, 9>& a, const std::array<double, 9>& b) {
  std::array<double, 9> r{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) r[i * 3 + j] += a[i * 3 + k] * b[k * 3 + j];
  return r;
}
// Rotation by t in the plane of axes (i, j).
std::array<double, 9> rotation(int i, int j, double t) {
  std::array<double, 9> r{1, 0, 0, 0, 1, 0, 0, 0, 1};
  r[i * 3 + i] = std::cos(t), r[i * 3 + j] = -std::sin(t);
  r[j * 3 + i] = std::sin(t), r[j * 3 + j] = std::cos(t);
  return r;
}

void gamma(float* x, int64_t n, double g) {
  const auto [lo, hi] = std::minmax_element(x, x + n);
  const double mn = *lo, range = *hi - mn;
  if (!(range > 0)) return;
  const float gf = static_cast<float>(g), m = static_cast<float>(mn), rf = static_cast<float>(range);
  for (int64_t i = 0; i < n; ++i) x[i] = std::pow((x[i] - m) / rf, gf) * rf + m;
}

}  // namespace

AugmentSpec& AugmentSpec::off() {
  p_flip = p_rot90 = p_rotate = p_scale = p_elastic = 0;
  p_brightness = p_contrast = p_gamma = p_noise = p_blur = 0;
  return *this;
}

int64_t samples_per_epoch(int64_t cases, const AugmentSpec& spec) {
  if (spec.rate < 0) throw std::invalid_argument("augmentation rate must be >= 0");
  return spec.enabled ? cases * (1 + spec.rate) : cases;
}

SampleRef sample_ref(int64_t sample, int64_t cases, const AugmentSpec& spec) {
  if (cases <= 0) throw std::invalid_argument("sample_ref: no cases");
  SampleRef r;
  r.case_index = sample % cases;
  r.copy = sample / cases;
  r.augment = spec.enabled && (spec.rate == 0 || r.copy > 0);
  return r;
}

void flip(Sample& s, int axis) {
  const int64_t d = s.d, h = s.h, w = s.w;
  permute(s, d, h, w, [&](int64_t z, int64_t y, int64_t x) {
    if (axis == 0) z = d - 1 - z;
    if (axis == 1) y = h - 1 - y;
    if (axis == 2) x = w - 1 - x;
    return (z * h + y) * w + x;
  });
}

void rot90(Sample& s, int k) {
  k = ((k % 4) + 4) % 4;
  if (k == 0) return;
  const int64_t d = s.d, h = s.h, w = s.w;
  const int64_t nh = k == 2 ? h : w, nw = k == 2 ? w : h;
  // As numpy.rot90(a, k, axes=(H, W)).
  permute(s, d, nh, nw, [&](int64_t z, int64_t i, int64_t j) {
    int64_t y, x;
    if (k == 1) y = j, x = w - 1 - i;
    else if (k == 2) y = h - 1 - i, x = w - 1 - j;
    else y = h - 1 - j, x = i;
    return (z * h + y) * w + x;
  });
}

void resample(Sample& s, const std::array<double, 9>& A, const float* disp, Interp image_interp, float fill_value,
              int32_t fill_label) {
  const int64_t d = s.d, h = s.h, w = s.w, n = s.spatial();
  const double cz = (d - 1) / 2.0, cy = (h - 1) / 2.0, cx = (w - 1) / 2.0;
  std::vector<float> image(s.c * n);
  std::vector<int32_t> label(s.labelled() ? n : 0);
  auto at = [&](int64_t c, int64_t z, int64_t y, int64_t x) {
    return z < 0 || z >= d || y < 0 || y >= h || x < 0 || x >= w ? fill_value
                                                                : s.image[c * n + (z * h + y) * w + x];
  };
  for (int64_t z = 0; z < d; ++z)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const int64_t i = (z * h + y) * w + x;
        const double qz = z - cz, qy = y - cy, qx = x - cx;
        double pz = cz + A[0] * qz + A[1] * qy + A[2] * qx;
        double py = cy + A[3] * qz + A[4] * qy + A[5] * qx;
        double px = cx + A[6] * qz + A[7] * qy + A[8] * qx;
        if (disp) pz += disp[i], py += disp[n + i], px += disp[2 * n + i];
        const int64_t nz = static_cast<int64_t>(std::floor(pz + 0.5)), ny = static_cast<int64_t>(std::floor(py + 0.5)),
                      nx = static_cast<int64_t>(std::floor(px + 0.5));
        const bool inside = nz >= 0 && nz < d && ny >= 0 && ny < h && nx >= 0 && nx < w;
        if (!label.empty()) label[i] = inside ? s.label[(nz * h + ny) * w + nx] : fill_label;
        if (image_interp == Interp::nearest) {
          for (int64_t c = 0; c < s.c; ++c) image[c * n + i] = at(c, nz, ny, nx);
          continue;
        }
        const int64_t z0 = static_cast<int64_t>(std::floor(pz)), y0 = static_cast<int64_t>(std::floor(py)),
                      x0 = static_cast<int64_t>(std::floor(px));
        const double fz = pz - z0, fy = py - y0, fx = px - x0;
        // The common case, all corners inside (a 2D sample has one plane and
        // pz == 0): no bounds checks.
        const bool inside_xy = x0 >= 0 && x0 + 1 < w && y0 >= 0 && y0 + 1 < h;
        const bool flat = z0 >= 0 && z0 < d && fz == 0;
        if (inside_xy && (flat || (z0 >= 0 && z0 + 1 < d))) {
          const float* q = s.image.data() + (z0 * h + y0) * w + x0;
          for (int64_t c = 0; c < s.c; ++c, q += n) {
            double v = (1 - fy) * ((1 - fx) * q[0] + fx * q[1]) + fy * ((1 - fx) * q[w] + fx * q[w + 1]);
            if (!flat) {
              const float* r = q + h * w;
              const double v2 = (1 - fy) * ((1 - fx) * r[0] + fx * r[1]) + fy * ((1 - fx) * r[w] + fx * r[w + 1]);
              v = (1 - fz) * v + fz * v2;
            }
            image[c * n + i] = static_cast<float>(v);
          }
          continue;
        }
        for (int64_t c = 0; c < s.c; ++c) {
          double v = 0;
          // Corners of weight 0 are skipped: a 2D sample (d == 1, pz == 0) then
          // never blends in the fill value from a plane that does not exist.
          for (int dz = 0; dz < 2; ++dz) {
            const double wz = dz ? fz : 1 - fz;
            if (wz == 0) continue;
            for (int dy = 0; dy < 2; ++dy) {
              const double wy = dy ? fy : 1 - fy;
              if (wy == 0) continue;
              for (int dx = 0; dx < 2; ++dx) {
                const double wx = dx ? fx : 1 - fx;
                if (wx == 0) continue;
                v += wz * wy * wx * at(c, z0 + dz, y0 + dy, x0 + dx);
              }
            }
          }
          image[c * n + i] = static_cast<float>(v);
        }
      }
  s.image.swap(image);
  if (s.labelled()) s.label.swap(label);
}

void gaussian_blur(float* data, int64_t d, int64_t h, int64_t w, int dims, double sigma) {
  if (!(sigma > 0)) return;
  const int64_t r = static_cast<int64_t>(std::ceil(3 * sigma));
  std::vector<float> k(2 * r + 1);
  double sum = 0;
  for (int64_t i = -r; i <= r; ++i) sum += std::exp(-0.5 * i * i / (sigma * sigma));
  for (int64_t i = -r; i <= r; ++i) k[i + r] = static_cast<float>(std::exp(-0.5 * i * i / (sigma * sigma)) / sum);
  // Separable, borders replicated. Along x each row is convolved alone; along y
  // and z whole rows are weighted and added, which keeps the inner loop
  // contiguous (and vectorised).
  std::vector<float> line(w + 2 * r);
  for (int64_t row = 0; row < d * h; ++row) {
    float* x = data + row * w;
    for (int64_t i = 0; i < w + 2 * r; ++i) line[i] = x[std::clamp<int64_t>(i - r, 0, w - 1)];
    for (int64_t i = 0; i < w; ++i) {
      float v = 0;
      for (int64_t j = 0; j <= 2 * r; ++j) v += k[j] * line[i + j];
      x[i] = v;
    }
  }
  std::vector<float> src;
  std::vector<float> acc(w);
  auto along = [&](int64_t len, int64_t stride, int64_t outer, int64_t outer_stride) {
    // Rows at distance `stride` apart, `len` of them per block, `outer` blocks.
    if (len < 2) return;
    for (int64_t o = 0; o < outer; ++o) {
      float* base = data + o * outer_stride;
      src.assign(base, base + len * stride);
      for (int64_t i = 0; i < len; ++i)
        for (int64_t x0 = 0; x0 < stride; x0 += w) {
          std::fill(acc.begin(), acc.end(), 0.f);
          for (int64_t j = -r; j <= r; ++j) {
            const float* in = src.data() + std::clamp<int64_t>(i + j, 0, len - 1) * stride + x0;
            const float kj = k[j + r];
            for (int64_t x = 0; x < w; ++x) acc[x] += kj * in[x];
          }
          std::copy(acc.begin(), acc.end(), base + i * stride + x0);
        }
    }
  };
  along(h, w, d, h * w);              // y: rows of one plane
  if (dims == 3) along(d, h * w, 1, 0);  // z: planes of the volume
}

// A smooth random displacement field, 3 x spatial (z, y, x components; z zero
// in 2D), whose largest displacement is alpha voxels. Uniform noise is smoothed
// with a Gaussian of sigma voxels on a grid f = floor(sigma / 2) times coarser
// and interpolated up: the same smoothness at a fraction of the cost (a 3D
// field at full resolution spent most of its time in the blur).
static std::vector<float> displacement_field(const Sample& s, double alpha, double sigma, std::mt19937_64& rng) {
  const bool is3d = s.dims == 3;
  const int64_t n = s.spatial(), f = std::max<int64_t>(1, static_cast<int64_t>(sigma / 2));
  const int64_t cd = is3d ? (s.d - 1) / f + 2 : 1, ch = (s.h - 1) / f + 2, cw = (s.w - 1) / f + 2;
  std::vector<float> disp(3 * n, 0.f), coarse(cd * ch * cw);
  for (int axis = is3d ? 0 : 1; axis < 3; ++axis) {
    for (auto& v : coarse) v = static_cast<float>(uniform(rng, -1, 1));
    gaussian_blur(coarse.data(), cd, ch, cw, s.dims, sigma / f);
    float peak = 0;
    for (float v : coarse) peak = std::max(peak, std::fabs(v));
    const float scale = peak > 0 ? static_cast<float>(alpha / peak) : 0.f;
    float* out = disp.data() + axis * n;
    for (int64_t z = 0; z < s.d; ++z) {
      const int64_t z0 = z / f, z1 = std::min(z0 + 1, cd - 1);
      const float fz = static_cast<float>(z % f) / f;
      for (int64_t y = 0; y < s.h; ++y) {
        const int64_t y0 = y / f, y1 = y0 + 1;
        const float fy = static_cast<float>(y % f) / f;
        for (int64_t x = 0; x < s.w; ++x) {
          const int64_t x0 = x / f, x1 = x0 + 1;
          const float fx = static_cast<float>(x % f) / f;
          auto c = [&](int64_t zz, int64_t yy, int64_t xx) { return coarse[(zz * ch + yy) * cw + xx]; };
          const float v0 = (1 - fy) * ((1 - fx) * c(z0, y0, x0) + fx * c(z0, y0, x1)) +
                           fy * ((1 - fx) * c(z0, y1, x0) + fx * c(z0, y1, x1));
          const float v1 = (1 - fy) * ((1 - fx) * c(z1, y0, x0) + fx * c(z1, y0, x1)) +
                           fy * ((1 - fx) * c(z1, y1, x0) + fx * c(z1, y1, x1));
          out[(z * s.h + y) * s.w + x] = scale * ((1 - fz) * v0 + fz * v1);
        }
      }
    }
  }
  return disp;
}

void augment(Sample& s, const AugmentSpec& a, std::mt19937_64& rng) {
  if (!a.enabled) return;
  const bool is3d = s.dims == 3;

  for (int axis = is3d ? 0 : 1; axis < 3; ++axis)
    if (chance(rng, a.p_flip)) flip(s, axis);
  if (chance(rng, a.p_rot90))
    rot90(s, s.h == s.w ? static_cast<int>(std::uniform_int_distribution<int>(1, 3)(rng)) : 2);

  std::array<double, 9> A{1, 0, 0, 0, 1, 0, 0, 0, 1};
  bool moved = false;
  if (chance(rng, a.p_rotate)) {
    const double r = a.rotate_degrees * kPi / 180;
    A = mul(A, rotation(1, 2, uniform(rng, -r, r)));  // in-plane: y-x
    if (is3d && !a.rotate_in_plane) {
      A = mul(A, rotation(0, 2, uniform(rng, -r, r)));
      A = mul(A, rotation(0, 1, uniform(rng, -r, r)));
    }
    moved = true;
  }
  if (chance(rng, a.p_scale)) {
    const double f = 1 / uniform(rng, a.scale_lo, a.scale_hi);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) A[i * 3 + j] *= (i == 0 && !is3d) ? 1 : f;
    moved = true;
  }
  std::vector<float> disp;
  if (chance(rng, a.p_elastic)) {
    disp = displacement_field(s, a.elastic_alpha, a.elastic_sigma, rng);
    moved = true;
  }
  if (moved) resample(s, A, disp.empty() ? nullptr : disp.data(), a.image_interp, a.fill_value, a.fill_label);

  const int64_t n = s.spatial();
  if (chance(rng, a.p_brightness)) {
    const float b = static_cast<float>(uniform(rng, a.brightness_lo, a.brightness_hi));
    for (auto& v : s.image) v *= b;
  }
  if (chance(rng, a.p_contrast)) {
    const double f = uniform(rng, a.contrast_lo, a.contrast_hi);
    for (int64_t c = 0; c < s.c; ++c) {
      float* x = s.image.data() + c * n;
      double mean = 0;
      for (int64_t i = 0; i < n; ++i) mean += x[i];
      mean /= n;
      for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>((x[i] - mean) * f + mean);
    }
  }
  if (chance(rng, a.p_gamma)) {
    const double g = uniform(rng, a.gamma_lo, a.gamma_hi);
    for (int64_t c = 0; c < s.c; ++c) gamma(s.image.data() + c * n, n, g);
  }
  if (chance(rng, a.p_noise)) {
    const double sigma = uniform(rng, 0, a.noise_sigma);
    if (sigma > 0) {
      std::normal_distribution<float> noise(0.f, static_cast<float>(sigma));
      for (auto& v : s.image) v += noise(rng);
    }
  }
  if (chance(rng, a.p_blur)) {
    const double sigma = uniform(rng, a.blur_lo, a.blur_hi);
    for (int64_t c = 0; c < s.c; ++c) gaussian_blur(s.image.data() + c * n, s.d, s.h, s.w, s.dims, sigma);
  }
}

}  // namespace unet
