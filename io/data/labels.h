// Label maps as read (float voxels) -> int32 class indices.
//
// The rule, in order:
//  1. binarize (optional): v -> 1 where v > threshold, else 0. The threshold
//     defaults to default_threshold(label): 0.5 when every value lies in
//     [0, 1]; otherwise half the stored type's full scale (127.5 for 8-bit
//     PNG), and 127.5 for floating-point files (the 0/255 convention of the
//     lung masks, whose interpolated voxels run from about -115 to 345).
//  2. without binarization every voxel must hold an integer (within 1e-3);
//     otherwise a FileError names the file, the range found and the option
//     that handles it (--label-threshold).
//  3. map (optional): value -> class, applied to the binarized value when
//     binarizing (keys 0 and 1), to the stored value otherwise. A value that
//     no key matches is an error. ISBI with membrane (stored 0) as class 1:
//     --label-map 0:1,255:0, or --label-threshold 127.5 --label-map 0:1,1:0.
//  4. every class must lie in [0, classes), or equal ignore_label when that
//     is >= 0; anything else is a FileError naming the value and the file.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "io/volume.h"

namespace unet {

struct LabelSpec {
  bool binarize = false;
  double threshold = std::numeric_limits<double>::quiet_NaN();  // NaN: default_threshold
  std::vector<std::pair<double, int32_t>> map;                  // stored value -> class
  int32_t classes = 2;
  int32_t ignore_label = -1;  // negative: none
  // The object class of the cluster U-Net modules: when set, class 1 where the
  // value (after binarizing, if asked) equals it, 0 everywhere else; the map is
  // not used. ISBI's membrane: object_value 0.
  double object_value = std::numeric_limits<double>::quiet_NaN();
};

double default_threshold(const Volume& label);

// Converts a one-channel label volume; throws FileError (naming label.path).
std::vector<int32_t> to_classes(const Volume& label, const LabelSpec& spec);

// "0:1,255:0" -> {{0, 1}, {255, 0}}; throws std::invalid_argument on bad text.
std::vector<std::pair<double, int32_t>> parse_label_map(const std::string& text);

}  // namespace unet
