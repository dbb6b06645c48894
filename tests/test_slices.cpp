// 2D nets on volumes: a volume's axes reordered so that the slicing axis comes
// first and back, its slices as 2D samples.
#include "io/data/slices.h"

#include <gtest/gtest.h>

#include <numeric>

namespace unet {
namespace {

TEST(Slices, AxisFirstAndBackAreInverse) {
  const Grid grid{3, 4, 5};
  std::vector<float> v(2 * 60);
  std::iota(v.begin(), v.end(), 0.f);
  for (int axis : {0, 1, 2}) {
    const std::vector<float> first = slicing_axis_first(v, 2, grid, axis);
    EXPECT_EQ(slicing_axis_back(first, 2, grid, axis), v) << axis;
  }
  // Along y (axis 1): reordered (y, z, x); voxel (z 2, y 1, x 3) of channel 1 lands at (1, 2, 3).
  const std::vector<float> y = slicing_axis_first(v, 2, grid, 1);
  EXPECT_EQ(slicing_grid(grid, 1), (Grid{4, 3, 5}));
  EXPECT_EQ(y[60 + (1 * 3 + 2) * 5 + 3], v[60 + (2 * 4 + 1) * 5 + 3]);
  // Along x (axis 2): reordered (x, z, y).
  const std::vector<float> x = slicing_axis_first(v, 2, grid, 2);
  EXPECT_EQ(slicing_grid(grid, 2), (Grid{5, 3, 4}));
  EXPECT_EQ(x[(3 * 3 + 2) * 4 + 1], v[(2 * 4 + 1) * 5 + 3]);
  EXPECT_EQ(parse_slice_axis("x"), 2);
  EXPECT_STREQ(slice_axis_name(1), "y");
  EXPECT_THROW(parse_slice_axis("k"), std::invalid_argument);
}

TEST(Slices, EachSliceIsATwoDSampleWithItsLabels) {
  Sample s;
  s.c = 2, s.d = 3, s.h = 2, s.w = 2, s.dims = 3;
  s.image.resize(24);
  std::iota(s.image.begin(), s.image.end(), 0.f);
  s.label = {0, 1, 1, 0, 2, 2, 0, 0, 1, 0, 0, 1};
  const std::vector<Sample> slices = slices_of(s);
  ASSERT_EQ(slices.size(), 3u);
  const Sample& z1 = slices[1];
  EXPECT_EQ(z1.dims, 2);
  EXPECT_EQ(z1.d, 1);
  EXPECT_EQ(z1.image, (std::vector<float>{4, 5, 6, 7, 16, 17, 18, 19}));  // both channels' plane 1
  EXPECT_EQ(z1.label, (std::vector<int32_t>{2, 2, 0, 0}));
  const Sample along_x = slicing_axis_first(s, 2);
  EXPECT_EQ(along_x.grid(), (Grid{2, 3, 2}));
  EXPECT_EQ(along_x.label.size(), 12u);
}

}  // namespace
}  // namespace unet
