// 2D nets on volumes (nnU-Net's 2D configuration): a volume's axes reordered
// so that the axis it is sliced along comes first, as its D, and back; and a
// volume's D slices as 2D samples. The axes are named as in a grid (D, H, W):
// 0 slices along z (each slice an x-y plane), 1 along y (x-z planes), 2 along
// x (y-z planes); the two in-plane axes keep their order.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "io/data/patch.h"

namespace unet {

// "z", "y", "x" <-> 0, 1, 2; throws std::invalid_argument for another name.
int parse_slice_axis(const std::string& name);
const char* slice_axis_name(int axis);

// The grid (or per-axis values, such as spacings) with `axis` first: 0 (D, H,
// W), 1 (H, D, W), 2 (W, D, H).
template <class T>
std::array<T, 3> slicing_grid(const std::array<T, 3>& grid, int axis) {
  if (axis == 1) return {grid[1], grid[0], grid[2]};
  if (axis == 2) return {grid[2], grid[0], grid[1]};
  return grid;
}

// Channels x grid -> channels x slicing_grid(grid, axis), and back.
template <class T>
std::vector<T> slicing_axis_first(const std::vector<T>& v, int64_t channels, const Grid& grid, int axis);
template <class T>
std::vector<T> slicing_axis_back(const std::vector<T>& v, int64_t channels, const Grid& grid, int axis);

// The sample with `axis` first (a 3D sample still), its labels along.
Sample slicing_axis_first(const Sample& s, int axis);
// Each of a volume's D slices as a 2D sample (image and labels).
std::vector<Sample> slices_of(const Sample& s);

}  // namespace unet
