// Intensity normalization, per channel, with the statistics that make
// prediction normalize exactly as training did.
//
// Schemes (x is one channel of one image):
//   none    x
//   zscore  (x - mean(x)) / std(x), the image's own statistics (nnU-Net's default)
//   minmax  (x - min(x)) / (max(x) - min(x)), the image's own range
//   window  clip to [lo, hi], then (x - lo) / (hi - lo): a fixed CT window
//   ct      clip to [lo, hi], then (x - mean) / std, with lo, hi the 0.5 and
//           99.5 percentiles and mean, std those of the training set's
//           foreground voxels (label > 0): nnU-Net's CT scheme
//   fixed   x * scale + shift
// A std (or range) below 1e-8 counts as 1e-8, so a constant image does not
// produce NaN. Only `ct` needs dataset statistics; the rest carry their
// parameters in the same struct, so one NormalizationStats, saved with the
// model as JSON, says everything.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/base/choice.h"
#include "io/volume.h"

namespace unet {

enum class NormScheme { none, zscore, minmax, window, ct, fixed };
inline constexpr Choice<NormScheme> kNormSchemes[] = {
    {"none", NormScheme::none, "as stored"},
    {"zscore", NormScheme::zscore, "each image to mean 0, deviation 1 (nnU-Net's default)"},
    {"minmax", NormScheme::minmax, "each image to [0, 1]"},
    {"window", NormScheme::window, "clipped to --window lo,hi, then to [0, 1]"},
    {"ct", NormScheme::ct, "clipped to the training foreground's 0.5 and 99.5 percentiles, then its z-score (nnU-Net's CT)"},
    {"fixed", NormScheme::fixed, "x * scale + shift"}};
NormScheme parse_norm_scheme(const std::string& name);  // throws std::invalid_argument
std::string to_string(NormScheme s);

struct ChannelNorm {
  NormScheme scheme = NormScheme::zscore;
  double lo = 0, hi = 0;      // window, ct: the clip range
  double mean = 0, std = 1;   // ct: dataset foreground statistics
  double scale = 1, shift = 0;  // fixed
};

struct NormalizationStats {
  std::vector<ChannelNorm> channels;  // one per image channel
};

// The q-th percentile (q in 0..100), linear between order statistics as numpy's default.
template <class T>
double percentile(std::vector<T> v, double q) {
  const double pos = q / 100 * double(v.size() - 1);
  const size_t i = static_cast<size_t>(std::floor(pos));
  std::nth_element(v.begin(), v.begin() + i, v.end());
  const double a = v[i];
  if (i + 1 >= v.size()) return a;
  const double b = *std::min_element(v.begin() + i + 1, v.end());
  return a + (pos - double(i)) * (b - a);
}

nlohmann::json to_json(const NormalizationStats& s);
NormalizationStats normalization_from_json(const nlohmann::json& j);  // throws std::invalid_argument

// Collects the training set's foreground intensities for the `ct` scheme
// (at most max_per_case voxels per case and channel, evenly strided, as
// nnU-Net samples them) and finishes the stats.
class NormalizationBuilder {
 public:
  // One scheme per channel; window lo/hi and fixed scale/shift are given here.
  explicit NormalizationBuilder(std::vector<ChannelNorm> channels, int64_t max_per_case = 10000);
  // labels: one class per voxel (> 0 = foreground), or null to take every voxel.
  void add(const Volume& image, const int32_t* labels);
  NormalizationStats finish() const;  // throws std::runtime_error if a ct channel saw no voxel

 private:
  std::vector<ChannelNorm> channels_;
  int64_t max_per_case_;
  std::vector<std::vector<float>> samples_;  // per channel
};

// In place, channel by channel; image.c must match stats.channels.size().
void normalize(Volume& image, const NormalizationStats& stats);
void normalize(float* data, int64_t channels, int64_t spatial, const NormalizationStats& stats);

}  // namespace unet
