// Labels for deep supervision: a batch's classes at the grid of a coarser
// decoder level, whose voxels each cover `stride` (D, H, W) voxels of the input
// (the product of the poolings above it). Nearest, as PyTorch's
// interpolate(mode="nearest-exact") that nnU-Net v2 uses: coarse voxel i takes
// fine voxel i * s + s / 2, the one nearest its centre (for s = 2, the second).
//
// Memory contract
//   subsample_labels: reads n x in (D, H, W) labels; overwrites n x out, out =
//                     in / stride on each axis (the remainder dropped).
#pragma once

#include <array>
#include <cstdint>

#include "kernels/base/common.h"
#include "kernels/base/tensor.h"

namespace unet {

// The grid of labels subsampled by `stride`; throws std::invalid_argument
// where an axis would be empty.
Grid subsampled_grid(const Grid& in, const Grid& stride);

// Where coarse voxel (z, y, x) reads in a fine plane of height h and width w.
UNET_HD int64_t subsample_source(int64_t z, int64_t y, int64_t x, int64_t sd, int64_t sh, int64_t sw, int64_t h,
                                 int64_t w) {
  return ((z * sd + sd / 2) * h + y * sh + sh / 2) * w + x * sw + sw / 2;
}

void subsample_labels(const int32_t* in, int64_t n, const Grid& grid, const Grid& stride, int32_t* out);

#ifdef UNET_CUDA
void subsample_labels_cuda(const int32_t* in, int64_t n, const Grid& grid, const Grid& stride, int32_t* out,
                           Stream stream);
#endif

}  // namespace unet
