#include "engine/evaluate/components.h"

#include <cmath>

namespace unet {

std::vector<int32_t> connected_components(const int32_t* mask, std::array<int64_t, 3> dims, int32_t* count) {
  const int64_t D = dims[0], H = dims[1], W = dims[2], n = D * H * W;
  std::vector<int32_t> out(static_cast<size_t>(n), 0);
  std::vector<int64_t> stack;
  int32_t next = 0;
  for (int64_t start = 0; start < n; ++start) {
    if (mask[start] <= 0 || out[start]) continue;
    out[start] = ++next;
    stack.push_back(start);
    while (!stack.empty()) {  // flood fill, iterative: components may span millions of voxels
      const int64_t i = stack.back();
      stack.pop_back();
      const int64_t z = i / (H * W), y = i / W % H, x = i % W;
      const int64_t nb[6][3] = {{z - 1, y, x}, {z + 1, y, x}, {z, y - 1, x}, {z, y + 1, x}, {z, y, x - 1}, {z, y, x + 1}};
      for (const auto& p : nb) {
        if (p[0] < 0 || p[1] < 0 || p[2] < 0 || p[0] >= D || p[1] >= H || p[2] >= W) continue;
        const int64_t j = (p[0] * H + p[1]) * W + p[2];
        if (mask[j] > 0 && !out[j]) out[j] = next, stack.push_back(j);
      }
    }
  }
  if (count) *count = next;
  return out;
}

int64_t keep_largest_component(int32_t* mask, std::array<int64_t, 3> dims, int classes) {
  const int64_t n = dims[0] * dims[1] * dims[2];
  int64_t cleared = 0;
  std::vector<int32_t> one(static_cast<size_t>(n));
  for (int c = 1; c < classes; ++c) {
    for (int64_t i = 0; i < n; ++i) one[i] = mask[i] == c;
    int32_t count = 0;
    const std::vector<int32_t> comp = connected_components(one.data(), dims, &count);
    if (count < 2) continue;
    std::vector<int64_t> size(static_cast<size_t>(count) + 1, 0);
    for (int64_t i = 0; i < n; ++i) ++size[comp[i]];
    int32_t keep = 1;
    for (int32_t k = 2; k <= count; ++k)
      if (size[k] > size[keep]) keep = k;
    for (int64_t i = 0; i < n; ++i)
      if (comp[i] && comp[i] != keep) mask[i] = 0, ++cleared;
  }
  return cleared;
}

Volume components_rgb(const std::vector<int32_t>& components, int64_t h, int64_t w) {
  Volume v;
  v.c = 3, v.h = h, v.w = w, v.dims = 2;
  v.full_scale = 255;
  v.datatype = "uint8";
  v.voxels.assign(static_cast<size_t>(3 * h * w), 0.f);
  const int64_t plane = h * w;
  for (int64_t i = 0; i < plane; ++i) {
    const int32_t c = components[i];
    if (!c) continue;
    // Hues a golden angle apart: neighbouring numbers get distinct colours.
    const double hue = std::fmod(c * 137.50776405, 360.0) / 60.0;
    const double x = 1 - std::fabs(std::fmod(hue, 2.0) - 1);
    const double rgb[6][3] = {{1, x, 0}, {x, 1, 0}, {0, 1, x}, {0, x, 1}, {x, 0, 1}, {1, 0, x}};
    const auto& col = rgb[static_cast<int>(hue) % 6];
    for (int k = 0; k < 3; ++k) v.voxels[k * plane + i] = static_cast<float>(55 + 200 * col[k]);
  }
  return v;
}

}  // namespace unet
