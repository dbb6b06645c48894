// Deep supervision's labels: each coarse voxel takes the fine voxel nearest its
// centre (PyTorch's nearest-exact), per sample, per axis's own stride.
#include "kernels/subsample.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace unet {
namespace {

TEST(Subsample, NearestExactPerAxisAndSample) {
  // Two samples of 2 x 4 x 6 voxels numbered in order; stride 1 x 2 x 3.
  std::vector<int32_t> in(2 * 2 * 4 * 6);
  std::iota(in.begin(), in.end(), 0);
  const Grid grid{2, 4, 6}, stride{1, 2, 3};
  EXPECT_EQ(subsampled_grid(grid, stride), (Grid{2, 2, 2}));
  std::vector<int32_t> out(2 * 2 * 2 * 2);
  subsample_labels(in.data(), 2, grid, stride, out.data());
  // Coarse (z, y, x) reads fine (z, 2y + 1, 3x + 1).
  std::vector<int32_t> want;
  for (int s = 0; s < 2; ++s)
    for (int z = 0; z < 2; ++z)
      for (int y = 0; y < 2; ++y)
        for (int x = 0; x < 2; ++x) want.push_back(s * 48 + (z * 4 + 2 * y + 1) * 6 + 3 * x + 1);
  EXPECT_EQ(out, want);
  EXPECT_EQ(subsampled_grid({1, 7, 5}, {1, 2, 2}), (Grid{1, 3, 2}));  // a remainder is dropped
  EXPECT_THROW(subsampled_grid({1, 1, 8}, {1, 2, 2}), std::invalid_argument);
}

}  // namespace
}  // namespace unet
