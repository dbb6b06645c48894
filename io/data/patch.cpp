// Patch extraction: random or foreground-centred windows, padded at the borders.
#include "io/data/patch.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace unet {
namespace {

uint64_t mix(uint64_t z) {  // SplitMix64's finalizer: a bijection that scrambles every bit
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

int64_t uniform(std::mt19937_64& rng, int64_t lo, int64_t hi) {  // inclusive
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}


}  // namespace

uint64_t sample_key(uint64_t seed, int64_t epoch, int64_t index, uint64_t stream) {
  uint64_t k = mix(seed + 0x9E3779B97F4A7C15ull);
  k = mix(k ^ static_cast<uint64_t>(epoch));
  k = mix(k ^ static_cast<uint64_t>(index));
  return mix(k ^ stream);
}

std::mt19937_64 sample_rng(uint64_t seed, int64_t epoch, int64_t index, uint64_t stream) {
  return std::mt19937_64(sample_key(seed, epoch, index, stream));
}

ForegroundIndex index_foreground(const Sample& s) {
  ForegroundIndex fg;
  if (!s.labelled()) return fg;
  std::vector<std::vector<int64_t>> by_class;
  for (int64_t i = 0; i < static_cast<int64_t>(s.label.size()); ++i) {
    const int32_t c = s.label[i];
    if (c <= 0) continue;
    if (static_cast<size_t>(c) >= by_class.size()) by_class.resize(c + 1);
    by_class[c].push_back(i);
  }
  for (size_t c = 1; c < by_class.size(); ++c)
    if (!by_class[c].empty()) {
      fg.classes.push_back(static_cast<int32_t>(c));
      fg.voxels.push_back(std::move(by_class[c]));
    }
  return fg;
}

Sample crop(const Sample& s, std::array<int64_t, 3> o, std::array<int64_t, 3> n, float pad_value,
            int32_t pad_label) {
  Sample p;
  p.c = s.c, p.d = n[0], p.h = n[1], p.w = n[2], p.dims = s.dims;
  p.image.assign(p.c * p.spatial(), pad_value);
  if (s.labelled()) p.label.assign(p.spatial(), pad_label);
  // The rows of the window that fall inside the image are copied whole.
  const int64_t x0 = std::max<int64_t>(0, -o[2]), x1 = std::min(n[2], s.w - o[2]);
  if (x1 <= x0) return p;
  for (int64_t z = 0; z < n[0]; ++z) {
    const int64_t sz = o[0] + z;
    if (sz < 0 || sz >= s.d) continue;
    for (int64_t y = 0; y < n[1]; ++y) {
      const int64_t sy = o[1] + y;
      if (sy < 0 || sy >= s.h) continue;
      const int64_t src = (sz * s.h + sy) * s.w + o[2], dst = (z * p.h + y) * p.w;
      for (int64_t c = 0; c < s.c; ++c)
        std::copy(s.image.begin() + c * s.spatial() + src + x0, s.image.begin() + c * s.spatial() + src + x1,
                  p.image.begin() + c * p.spatial() + dst + x0);
      if (s.labelled())
        std::copy(s.label.begin() + src + x0, s.label.begin() + src + x1, p.label.begin() + dst + x0);
    }
  }
  return p;
}

Shape patch_shape(const Shape& image, const PatchSpec& spec) {
  Shape out = image;
  out.n = 1;
  if (spec.whole) {
    if (spec.multiple < 1) throw std::invalid_argument("patch: multiple must be >= 1");
    auto up = [&](int64_t v) { return (v + spec.multiple - 1) / spec.multiple * spec.multiple; };
    if (image.dims == 3) out.d = up(image.d);
    out.h = up(image.h), out.w = up(image.w);
    return out;
  }
  const std::array<int64_t, 3> full = image.grid();
  int64_t* dst[3] = {&out.d, &out.h, &out.w};
  for (int a = 0; a < 3; ++a) {
    if (spec.size[a] < 0) throw std::invalid_argument("patch: size must not be negative");
    *dst[a] = spec.size[a] == 0 ? full[a] : spec.size[a];
  }
  if (image.dims == 2) {
    if (out.d != 1) throw std::invalid_argument("patch: a 2D image takes a patch of depth 1, not " +
                                                std::to_string(out.d));
  }
  if (spec.foreground_fraction < 0 || spec.foreground_fraction > 1)
    throw std::invalid_argument("patch: foreground_fraction must lie in [0, 1]");
  return out;
}

Sample extract_patch(const Sample& s, const PatchSpec& spec, std::mt19937_64& rng, const ForegroundIndex* fg,
                     bool* centred) {
  const Shape ps = patch_shape(s.shape(), spec);
  const std::array<int64_t, 3> n = ps.grid(), full = s.grid();
  if (centred) *centred = false;
  if (spec.whole) return crop(s, {0, 0, 0}, n, spec.pad_value, spec.pad_label);

  // Where the patch is larger than the image the range is negative: the image
  // sits at a random place inside the patch.
  std::array<int64_t, 3> lo, hi, o;
  for (int a = 0; a < 3; ++a) lo[a] = std::min<int64_t>(0, full[a] - n[a]), hi[a] = std::max<int64_t>(0, full[a] - n[a]);

  // One draw decides, always made, so that the draws after it do not depend on
  // whether this case has foreground.
  const bool want_fg = std::uniform_real_distribution<double>(0, 1)(rng) < spec.foreground_fraction;
  ForegroundIndex local;
  if (want_fg && s.labelled() && !fg) local = index_foreground(s), fg = &local;
  if (want_fg && fg && !fg->empty()) {
    const auto& vox = fg->voxels[uniform(rng, 0, static_cast<int64_t>(fg->classes.size()) - 1)];
    int64_t v = vox[uniform(rng, 0, static_cast<int64_t>(vox.size()) - 1)];
    const int64_t at[3] = {v / (s.h * s.w), (v / s.w) % s.h, v % s.w};
    for (int a = 0; a < 3; ++a) o[a] = std::clamp(at[a] - n[a] / 2, lo[a], hi[a]);
    if (centred) *centred = true;
  } else {
    for (int a = 0; a < 3; ++a) o[a] = uniform(rng, lo[a], hi[a]);
  }
  return crop(s, o, n, spec.pad_value, spec.pad_label);
}

void write_to(const Sample& s, const Shape& expected, float* image, int32_t* label, int32_t missing_label) {
  Shape want = expected;
  want.n = 1;
  if (s.shape() != want)
    throw std::invalid_argument("sample of shape " + s.shape().str() + " where the batch takes " + want.str() +
                                "; patches of one size (or whole images of one size) are needed");
  std::copy(s.image.begin(), s.image.end(), image);
  if (s.labelled()) std::copy(s.label.begin(), s.label.end(), label);
  else std::fill(label, label + s.spatial(), missing_label);
}

}  // namespace unet
