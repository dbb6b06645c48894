// A dataset's fingerprint, as nnU-Net's planner reads one: what each case is
// (size, spacing, orientation, voxels per class) and the foreground's
// intensities per channel (mean, deviation, 0.5 and 99.5 percentiles), from
// every case read once. `unet plan` chooses a configuration from it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/data/dataset.h"
#include "io/data/labels.h"

namespace unet {

struct CaseFingerprint {
  std::string id;
  std::array<int64_t, 3> size{1, 1, 1};   // D, H, W (as Volume::grid)
  std::array<double, 3> spacing{1, 1, 1};  // x, y, z (as Volume::spacing: W, H, D)
  std::string orientation;                 // the voxel axes' world directions, nibabel's aff2axcodes ("LPS", ...)
  std::vector<int64_t> class_voxels;       // voxels of each class value
};

struct ForegroundIntensity {
  double mean = 0, std = 1, p00_5 = 0, p99_5 = 0;
};

struct Fingerprint {
  int dims = 2;
  int64_t channels = 1;
  std::vector<std::string> channel_names, classes;  // where the dataset names them
  std::vector<CaseFingerprint> cases;               // in the dataset's order
  std::vector<ForegroundIntensity> foreground;      // per channel, over voxels with a class > 0
};

// Reads every case (`workers` at a time) with labels converted by `labels`.
// Throws what reading a case throws (FileError naming the file).
Fingerprint fingerprint_dataset(const Dataset& ds, const LabelSpec& labels, int workers);

// nibabel's aff2axcodes: for each voxel axis (x, y, z) the world axis it runs
// along most, R/L, A/P, S/I by sign.
std::string orientation_codes(const std::array<double, 16>& affine);

nlohmann::json to_json(const Fingerprint& f);

}  // namespace unet
