#include "tools/cli/device_options.h"

#include "tools/cli/choice_option.h"

namespace unet {

std::shared_ptr<Backend> DeviceOptions::backend(int local_rank) const {
  return make_backend(gpus, parse_precision(precision), local_rank, !no_cuda_graphs);
}

void add_device_options(CLI::App& cmd, DeviceOptions& o) {
  cmd.add_option("--gpus", o.gpus, "GPUs to use: 0 (the CPU) or 1 (one per process)")->capture_default_str();
  add_choice(cmd, "--precision", o.precision, kPrecisions, "Arithmetic on a GPU");
  cmd.add_flag("--no-cuda-graphs", o.no_cuda_graphs,
               "Launch every op of a pass on its own instead of replaying the pass as a captured CUDA Graph");
}

}  // namespace unet
