// Label conversion: binarize, check integrality, map, range-check.
#include "io/data/labels.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>

namespace unet {
namespace {

std::string base_name(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}
std::string num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

}  // namespace

double default_threshold(const Volume& label) {
  const auto [lo, hi] = std::minmax_element(label.voxels.begin(), label.voxels.end());
  if (label.voxels.empty() || (*lo >= 0 && *hi <= 1)) return 0.5;
  return label.full_scale > 0 ? label.full_scale / 2 : 127.5;
}

std::vector<int32_t> to_classes(const Volume& label, const LabelSpec& spec) {
  const std::string name = base_name(label.path.empty() ? "label" : label.path);
  if (label.c != 1)
    throw FileError(label.path + ": a label map has one channel, this file has " + std::to_string(label.c));
  const int64_t n = label.spatial();
  std::vector<double> values(n);
  if (spec.binarize) {
    const double t = std::isnan(spec.threshold) ? default_threshold(label) : spec.threshold;
    for (int64_t i = 0; i < n; ++i) values[i] = label.voxels[i] > t ? 1 : 0;
  } else {
    float lo = 0, hi = 0;
    bool fractional = false;
    for (int64_t i = 0; i < n; ++i) {
      const float v = label.voxels[i];
      if (!std::isfinite(v))
        throw FileError(label.path + ": voxel " + std::to_string(i) + " of the label map is " + num(v));
      if (std::fabs(v - std::round(v)) > 1e-3) fractional = true;
      lo = i ? std::min(lo, v) : v, hi = i ? std::max(hi, v) : v;
      values[i] = std::round(v);
    }
    if (fractional)
      throw FileError(name + " holds non-integer values (" + num(lo) + " .. " + num(hi) +
                      "); these look like interpolated masks: pass a threshold (--label-threshold " +
                      num(default_threshold(label)) + ")");
  }

  std::vector<int32_t> out(n);
  for (int64_t i = 0; i < n; ++i) {
    const double v = values[i];
    int64_t cls;
    if (!std::isnan(spec.object_value)) {
      cls = v == spec.object_value ? 1 : 0;
    } else if (!spec.map.empty()) {
      auto it = std::find_if(spec.map.begin(), spec.map.end(), [&](const auto& kv) { return kv.first == v; });
      if (it == spec.map.end()) {
        std::string keys;
        for (const auto& kv : spec.map) keys += (keys.empty() ? "" : ", ") + num(kv.first);
        throw FileError(label.path + ": label value " + num(v) + (spec.binarize ? " (after the threshold)" : "") +
                        " has no class in the label map (keys " + keys + "); add it to --label-map");
      }
      cls = it->second;
    } else {
      cls = static_cast<int64_t>(v);
    }
    const bool ignored = spec.ignore_label >= 0 && cls == spec.ignore_label;
    if (!ignored && (cls < 0 || cls >= spec.classes))
      throw FileError(label.path + ": label value " + num(label.voxels[i]) + " gives class " + std::to_string(cls) +
                      ", outside the " + std::to_string(spec.classes) + " classes 0.." +
                      std::to_string(spec.classes - 1) +
                      "; map it with --label-map, binarize with --label-threshold, or raise the class count");
    out[i] = static_cast<int32_t>(cls);
  }
  return out;
}

std::vector<std::pair<double, int32_t>> parse_label_map(const std::string& text) {
  std::vector<std::pair<double, int32_t>> map;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto colon = item.find(':');
    try {
      if (colon == std::string::npos) throw std::invalid_argument("no colon");
      size_t used = 0;
      const double value = std::stod(item.substr(0, colon), &used);
      if (used != colon) throw std::invalid_argument("value");
      const std::string cls_text = item.substr(colon + 1);
      const long cls = std::stol(cls_text, &used);
      if (used != cls_text.size()) throw std::invalid_argument("class");
      map.push_back({value, static_cast<int32_t>(cls)});
    } catch (const std::exception&) {
      throw std::invalid_argument("label map \"" + text + "\": \"" + item +
                                  "\" is not value:class (expected e.g. 0:1,255:0)");
    }
  }
  if (map.empty()) throw std::invalid_argument("label map \"" + text + "\" is empty (expected e.g. 0:1,255:0)");
  return map;
}

}  // namespace unet
