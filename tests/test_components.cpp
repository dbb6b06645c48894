// Connected components (4-connected in 2D, 6-connected in 3D, numbered in scan
// order) and keep-the-largest-component, on hand-worked masks.
#include <gtest/gtest.h>

#include <vector>

#include "engine/evaluate/components.h"

namespace unet {
namespace {

TEST(Components, FourConnectedIn2D) {
  // Diagonal neighbours are separate components; numbering follows the scan.
  const std::vector<int32_t> mask{1, 0, 0, 2,
                                  0, 1, 0, 2,
                                  0, 0, 0, 0};
  int32_t count = 0;
  const auto c = connected_components(mask.data(), {1, 3, 4}, &count);
  EXPECT_EQ(count, 3);
  EXPECT_EQ(c, (std::vector<int32_t>{1, 0, 0, 2, 0, 3, 0, 2, 0, 0, 0, 0}));
}

TEST(Components, SixConnectedIn3D) {
  // Two voxels one above the other (z) are one component; a voxel diagonal in z is not.
  std::vector<int32_t> mask(2 * 2 * 2, 0);
  mask[0] = 1;          // z0 y0 x0
  mask[4] = 1;          // z1 y0 x0: face neighbour of the first
  mask[7] = 1;          // z1 y1 x1: touches nothing by a face
  int32_t count = 0;
  const auto c = connected_components(mask.data(), {2, 2, 2}, &count);
  EXPECT_EQ(count, 2);
  EXPECT_EQ(c[0], c[4]);
  EXPECT_NE(c[0], c[7]);
}

TEST(Components, KeepLargestPerClass) {
  // Class 1: blobs of 3 and 1 voxels; class 2: blobs of 2 and 2 (the first stays).
  std::vector<int32_t> mask{1, 1, 0, 2, 2,
                            1, 0, 0, 0, 0,
                            0, 0, 1, 0, 0,
                            2, 2, 0, 0, 0};
  const int64_t cleared = keep_largest_component(mask.data(), {1, 4, 5}, 3);
  EXPECT_EQ(cleared, 3);
  EXPECT_EQ(mask, (std::vector<int32_t>{1, 1, 0, 2, 2,
                                        1, 0, 0, 0, 0,
                                        0, 0, 0, 0, 0,
                                        0, 0, 0, 0, 0}));
  EXPECT_EQ(keep_largest_component(mask.data(), {1, 4, 5}, 3), 0) << "a second pass changes nothing";
}

}  // namespace
}  // namespace unet
