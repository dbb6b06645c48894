// Launch geometry shared by the CUDA kernels (included by .cu files only):
// grid-stride loops of kThreads-thread blocks, the grid capped so that one
// launch covers any size with 64-bit indices.
#pragma once

#include <cstdint>

namespace unet {

constexpr int kThreads = 256;

inline int blocks_for(int64_t total) {
  const int64_t b = (total + kThreads - 1) / kThreads;
  return static_cast<int>(b < 65535 * 8 ? b : 65535 * 8);
}

// for (i : [0, total)) over every thread of the grid.
#define UNET_GRID_LOOP(i, total) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (total); i += int64_t(gridDim.x) * blockDim.x)

}  // namespace unet
