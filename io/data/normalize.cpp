// Intensity normalization schemes and their serialised statistics.
#include "io/data/normalize.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace unet {
namespace {

constexpr double kEps = 1e-8;

}  // namespace

NormScheme parse_norm_scheme(const std::string& name) { return choose(kNormSchemes, name, "normalization"); }

std::string to_string(NormScheme s) { return choice_name(kNormSchemes, s); }

nlohmann::json to_json(const NormalizationStats& s) {
  nlohmann::json channels = nlohmann::json::array();
  for (const auto& c : s.channels)
    channels.push_back({{"scheme", to_string(c.scheme)}, {"lo", c.lo}, {"hi", c.hi}, {"mean", c.mean},
                        {"std", c.std}, {"scale", c.scale}, {"shift", c.shift}});
  return {{"channels", channels}};
}

NormalizationStats normalization_from_json(const nlohmann::json& j) {
  NormalizationStats s;
  try {
    for (const auto& c : j.at("channels")) {
      ChannelNorm n;
      n.scheme = parse_norm_scheme(c.at("scheme").get<std::string>());
      n.lo = c.value("lo", 0.0), n.hi = c.value("hi", 0.0);
      n.mean = c.value("mean", 0.0), n.std = c.value("std", 1.0);
      n.scale = c.value("scale", 1.0), n.shift = c.value("shift", 0.0);
      s.channels.push_back(n);
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("normalization statistics: ") + e.what());
  }
  return s;
}

NormalizationBuilder::NormalizationBuilder(std::vector<ChannelNorm> channels, int64_t max_per_case)
    : channels_(std::move(channels)), max_per_case_(max_per_case), samples_(channels_.size()) {}

void NormalizationBuilder::add(const Volume& image, const int32_t* labels) {
  if (image.c != static_cast<int64_t>(channels_.size()))
    throw FileError(image.path + ": " + std::to_string(image.c) + " channels, the normalization has " +
                    std::to_string(channels_.size()));
  const int64_t n = image.spatial();
  std::vector<int64_t> fg;
  for (int64_t i = 0; i < n; ++i)
    if (!labels || labels[i] > 0) fg.push_back(i);
  const int64_t take = std::min<int64_t>(fg.size(), max_per_case_);
  for (size_t c = 0; c < channels_.size(); ++c) {
    if (channels_[c].scheme != NormScheme::ct) continue;
    const float* x = image.voxels.data() + c * n;
    for (int64_t k = 0; k < take; ++k) samples_[c].push_back(x[fg[k * fg.size() / take]]);
  }
}

NormalizationStats NormalizationBuilder::finish() const {
  NormalizationStats s{channels_};
  for (size_t c = 0; c < channels_.size(); ++c) {
    if (channels_[c].scheme != NormScheme::ct) continue;
    const auto& v = samples_[c];
    if (v.empty())
      throw std::runtime_error("ct normalization of channel " + std::to_string(c) +
                               ": no foreground voxel in the training set (labels > 0)");
    double sum = 0, sq = 0;
    for (float x : v) sum += x;
    const double mean = sum / v.size();
    for (float x : v) sq += (x - mean) * (x - mean);
    auto& n = s.channels[c];
    n.mean = mean, n.std = std::sqrt(sq / v.size());
    n.lo = percentile(v, 0.5), n.hi = percentile(v, 99.5);
  }
  return s;
}

void normalize(float* data, int64_t channels, int64_t spatial, const NormalizationStats& stats) {
  if (channels != static_cast<int64_t>(stats.channels.size()))
    throw std::invalid_argument("normalize: " + std::to_string(channels) + " channels, the statistics have " +
                                std::to_string(stats.channels.size()));
  for (int64_t c = 0; c < channels; ++c) {
    float* x = data + c * spatial;
    const ChannelNorm& n = stats.channels[c];
    double a = 1, b = 0;  // x -> a x + b after clipping
    bool clip = false;
    switch (n.scheme) {
      case NormScheme::none:
        continue;
      case NormScheme::zscore: {
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < spatial; ++i) sum += x[i];
        const double mean = sum / spatial;
        for (int64_t i = 0; i < spatial; ++i) sq += (x[i] - mean) * (x[i] - mean);
        a = 1 / std::max(std::sqrt(sq / spatial), kEps), b = -mean * a;
        break;
      }
      case NormScheme::minmax: {
        const auto [lo, hi] = std::minmax_element(x, x + spatial);
        a = 1 / std::max<double>(*hi - *lo, kEps), b = -*lo * a;
        break;
      }
      case NormScheme::window:
        clip = true, a = 1 / std::max(n.hi - n.lo, kEps), b = -n.lo * a;
        break;
      case NormScheme::ct:
        clip = true, a = 1 / std::max(n.std, kEps), b = -n.mean * a;
        break;
      case NormScheme::fixed:
        a = n.scale, b = n.shift;
        break;
    }
    for (int64_t i = 0; i < spatial; ++i) {
      const double v = clip ? std::clamp<double>(x[i], n.lo, n.hi) : x[i];
      x[i] = static_cast<float>(a * v + b);
    }
  }
}

void normalize(Volume& image, const NormalizationStats& stats) {
  normalize(image.voxels.data(), image.c, image.spatial(), stats);
}

}  // namespace unet
