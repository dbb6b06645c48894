// Connected components of a mask (voxels of class > 0): 4-connected in 2D,
// 6-connected in 3D, numbered 1.. in scan order. Used for the RGB image of
// components that `unet predict` writes, and for counting objects.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "io/volume.h"

namespace unet {

// dims {D, H, W}; returns a component number per voxel (0 = background) and the count.
std::vector<int32_t> connected_components(const int32_t* mask, std::array<int64_t, 3> dims, int32_t* count);

// nnU-Net's "keep only the largest component", per class: every voxel of a
// class c > 0 outside the largest connected component of class c becomes
// background (0); of equal sizes, the first in scan order stays. `classes` is
// the class count (background included). Returns how many voxels it cleared.
int64_t keep_largest_component(int32_t* mask, std::array<int64_t, 3> dims, int classes);

// An RGB slice (c = 3, 8-bit values) with each component in its own colour.
Volume components_rgb(const std::vector<int32_t>& components, int64_t h, int64_t w);

}  // namespace unet
