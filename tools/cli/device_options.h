// Where a command runs (shared by train, predict and bench): --gpus,
// --precision and --no-cuda-graphs, turned into the backend the model moves to.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "engine/device/backend.h"

namespace unet {

struct DeviceOptions {
  int gpus = 0;
  std::string precision = "fp32";
  bool no_cuda_graphs = false;
  // The CPU for --gpus 0, this rank's GPU for --gpus 1 (make_backend); throws
  // std::invalid_argument / std::runtime_error saying what to change.
  std::shared_ptr<Backend> backend(int local_rank = 0) const;
};

void add_device_options(CLI::App& cmd, DeviceOptions& o);

}  // namespace unet
