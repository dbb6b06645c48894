// The options that turn stored label values into classes (shared by train and
// plan): --label-threshold, --label-map, --object-class, --ignore-label.
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <stdexcept>
#include <string>

#include "io/data/labels.h"

namespace unet {

struct LabelOptions {
  LabelSpec spec;
  double threshold = std::nan("");
  std::string map;
};

inline void add_label_options(CLI::App& cmd, LabelOptions& o) {
  cmd.add_option("--label-threshold", o.threshold, "Binarize labels: class 1 above this value");
  cmd.add_option("--label-map", o.map, "Stored label value -> class, e.g. 0:1,255:0 (ISBI membrane)");
  cmd.add_option("--object-class", o.spec.object_value,
                 "The label value of the object (class 1); every other value is background");
  cmd.add_option("--ignore-label", o.spec.ignore_label, "A class left out of the loss and the metrics");
}

// The spec for `classes` classes; throws std::invalid_argument on options that contradict.
inline LabelSpec resolve_labels(const LabelOptions& o, int classes) {
  LabelSpec s = o.spec;
  s.classes = classes;
  if (!std::isnan(o.threshold)) s.binarize = true, s.threshold = o.threshold;
  if (!o.map.empty()) s.map = parse_label_map(o.map);
  if (!std::isnan(s.object_value) && !s.map.empty())
    throw std::invalid_argument("give --object-class or --label-map, not both");
  return s;
}

}  // namespace unet
