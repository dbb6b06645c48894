// Planning a dataset for the command line: `unet plan` does it, and `unet
// train --data D` with no model options does it first.
#pragma once

#include <memory>
#include <string>

#include "engine/device/backend.h"
#include "tools/cli/label_options.h"

namespace unet {

struct PlanRequest {
  std::string data;
  double memory_budget_gib = 0;  // 0: the GPU's free memory on a GPU backend, else the machine's
  int classes = 0;               // 0: the dataset's, else 2
  int workers = 0;               // cases read at once; 0: the cores
  bool ct = false;               // every channel CT
  LabelOptions labels;
  std::shared_ptr<Backend> backend;
};

// Fingerprints the dataset and plans it, printing both with their reasons,
// and writes both to `output` as JSON (the file `unet train --plan` reads).
void plan_and_write(const PlanRequest& r, const std::string& output);

}  // namespace unet
