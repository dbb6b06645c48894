// From a dataset's fingerprint to what to train, nnU-Net's way: a target
// spacing, a normalization per channel, and for each configuration (2D on
// slices, 3D at full resolution) a patch, a batch, a depth and filters sized
// against a memory budget by the model's own planner (UNet::plan_bytes), so
// that the memory a plan shows is what training allocates for it.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/device/backend.h"
#include "engine/model/unet_config.h"
#include "io/data/fingerprint.h"
#include "io/data/normalize.h"

namespace unet {

struct PlannedConfiguration {
  std::string name;                   // "2d" or "3d"
  UNetConfig model;
  std::array<int64_t, 3> patch{1, 1, 1};  // D, H, W (D = 1 in 2D)
  int batch = 2;
  int64_t arena_bytes = 0;            // what UNet::plan lays out for a batch of patches
  int64_t model_bytes = 0;            // parameters, gradients and Adam's two moments, fp32
  std::vector<std::string> reasons;   // why each choice, in words
  int64_t bytes() const { return arena_bytes + model_bytes; }
  std::string size_text() const;      // "W x H[ x D]", as --size takes it
};

struct DatasetPlan {
  std::array<double, 3> spacing{1, 1, 1};  // target, x, y, z
  std::string spacing_reason;
  std::array<int64_t, 3> median_shape{1, 1, 1};  // D, H, W at the target spacing
  NormalizationStats normalization;
  std::vector<std::string> normalization_reasons;  // per channel
  int slice_axis = 0;  // volumes: the 2d configuration's slicing axis (slices.h), the coarsest
  std::string slice_axis_reason;
  int64_t budget_bytes = 0;
  std::vector<PlannedConfiguration> configurations;  // 3d first where the data is 3D, then 2d
};

struct PlanOptions {
  int64_t budget_bytes = 0;               // the memory one training process may use
  std::shared_ptr<Backend> backend;       // where the plan is laid out (the CPU's when null)
  bool ct = false;                        // treat every channel as CT, whatever its name
  int classes = 2;                        // including background
};

// The median of each axis; for one axis more than 3x coarser than the others,
// that axis's 10th percentile (nnU-Net's anisotropy rule).
std::array<double, 3> target_spacing(const Fingerprint& f, std::string* reason = nullptr);

// Throws std::invalid_argument when not even the smallest patch fits the budget.
DatasetPlan plan_dataset(const Fingerprint& f, const PlanOptions& o);

nlohmann::json to_json(const DatasetPlan& p);

// One configuration of a plan file that `unet plan` wrote, for `unet train --plan`.
struct PlanChoice {
  PlannedConfiguration configuration;  // model, patch, batch (reasons and bytes as planned)
  NormalizationStats normalization;
  std::array<double, 3> spacing{1, 1, 1};
  int data_dims = 2;  // the dataset's: a 2d configuration of volumes trains on slices
  int slice_axis = 0;  // ... along this axis
};
// `configuration` empty: 3d where planned, else 2d. Throws FileError naming
// the file and what is wrong or missing.
PlanChoice read_plan(const std::string& path, const std::string& configuration);

}  // namespace unet
