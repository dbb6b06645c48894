#include "io/data/slices.h"

#include <algorithm>
#include <stdexcept>

namespace unet {
namespace {

// For each voxel of the reordered grid, its index in the original one:
// reordered (a, b, c) is original (a, b, c) permuted back.
template <class F>
void each_voxel(int64_t channels, const Grid& grid, int axis, F f) {
  const Grid g = slicing_grid(grid, axis);
  const int64_t plane = grid[0] * grid[1] * grid[2];
  for (int64_t ch = 0; ch < channels; ++ch)
    for (int64_t a = 0; a < g[0]; ++a)
      for (int64_t b = 0; b < g[1]; ++b)
        for (int64_t c = 0; c < g[2]; ++c) {
          const int64_t z = axis == 0 ? a : b, y = axis == 0 ? b : axis == 1 ? a : c, x = axis == 2 ? a : c;
          f(ch * plane + ((a * g[1] + b) * g[2] + c), ch * plane + (z * grid[1] + y) * grid[2] + x);
        }
}

}  // namespace

int parse_slice_axis(const std::string& name) {
  if (name == "z") return 0;
  if (name == "y") return 1;
  if (name == "x") return 2;
  throw std::invalid_argument("slice axis \"" + name + "\": expected z, y or x");
}

const char* slice_axis_name(int axis) { return axis == 0 ? "z" : axis == 1 ? "y" : "x"; }

template <class T>
std::vector<T> slicing_axis_first(const std::vector<T>& v, int64_t channels, const Grid& grid, int axis) {
  if (axis == 0) return v;
  std::vector<T> out(v.size());
  each_voxel(channels, grid, axis, [&](int64_t to, int64_t from) { out[to] = v[from]; });
  return out;
}

template <class T>
std::vector<T> slicing_axis_back(const std::vector<T>& v, int64_t channels, const Grid& grid, int axis) {
  if (axis == 0) return v;
  std::vector<T> out(v.size());
  each_voxel(channels, grid, axis, [&](int64_t from, int64_t to) { out[to] = v[from]; });
  return out;
}

template std::vector<float> slicing_axis_first(const std::vector<float>&, int64_t, const Grid&, int);
template std::vector<int32_t> slicing_axis_first(const std::vector<int32_t>&, int64_t, const Grid&, int);
template std::vector<float> slicing_axis_back(const std::vector<float>&, int64_t, const Grid&, int);
template std::vector<int32_t> slicing_axis_back(const std::vector<int32_t>&, int64_t, const Grid&, int);

Sample slicing_axis_first(const Sample& s, int axis) {
  Sample out = s;
  out.image = slicing_axis_first(s.image, s.c, s.grid(), axis);
  if (s.labelled()) out.label = slicing_axis_first(s.label, 1, s.grid(), axis);
  const Grid g = slicing_grid(s.grid(), axis);
  out.d = g[0], out.h = g[1], out.w = g[2];
  return out;
}

std::vector<Sample> slices_of(const Sample& s) {
  std::vector<Sample> out(static_cast<size_t>(s.d));
  const int64_t plane = s.h * s.w;
  for (int64_t z = 0; z < s.d; ++z) {
    Sample& t = out[z];
    t.c = s.c, t.d = 1, t.h = s.h, t.w = s.w, t.dims = 2;
    t.image.resize(static_cast<size_t>(s.c * plane));
    for (int64_t c = 0; c < s.c; ++c)
      std::copy_n(s.image.begin() + (c * s.d + z) * plane, plane, t.image.begin() + c * plane);
    if (s.labelled()) t.label.assign(s.label.begin() + z * plane, s.label.begin() + (z + 1) * plane);
  }
  return out;
}

}  // namespace unet
