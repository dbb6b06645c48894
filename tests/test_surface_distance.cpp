#include "engine/evaluate/surface_distance.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace unet {
namespace {

TEST(SurfaceDistance, TransformEqualsBruteForceWithSpacing) {
  const std::array<int64_t, 3> dims{5, 6, 7};
  const std::array<double, 3> sp{2.5, 1.0, 0.7};
  std::mt19937 rng(3);
  std::vector<uint8_t> seed(5 * 6 * 7, 0);
  for (auto& s : seed) s = rng() % 17 == 0;
  const std::vector<double> got = squared_distance_transform(seed, dims, sp);
  for (int64_t i = 0; i < 210; ++i) {
    double best = INFINITY;
    for (int64_t j = 0; j < 210; ++j) {
      if (!seed[j]) continue;
      const double dz = (i / 42 - j / 42) * sp[0], dy = (i / 7 % 6 - j / 7 % 6) * sp[1], dx = (i % 7 - j % 7) * sp[2];
      best = std::min(best, dz * dz + dy * dy + dx * dx);
    }
    ASSERT_NEAR(got[i], best, 1e-9) << "voxel " << i;
  }
}

std::vector<uint8_t> square(int64_t h, int64_t w, int64_t y0, int64_t x0, int64_t size) {
  std::vector<uint8_t> m(h * w, 0);
  for (int64_t y = y0; y < y0 + size; ++y)
    for (int64_t x = x0; x < x0 + size; ++x) m[y * w + x] = 1;
  return m;
}

// A 10 x 10 square against the same square moved 3 pixels along x (0.5 mm
// apart): overlap 70 of 100, every distance along x, the largest 3 pixels.
TEST(SurfaceDistance, ShiftedSquareByHand) {
  const auto ref = square(32, 32, 10, 10, 10), pred = square(32, 32, 10, 13, 10);
  const SegmentationScores s = score_masks(pred, ref, {1, 32, 32}, {1.0, 1.0, 0.5});
  EXPECT_DOUBLE_EQ(s.dice, 140.0 / 200.0);
  EXPECT_DOUBLE_EQ(s.iou, 70.0 / 130.0);
  EXPECT_DOUBLE_EQ(s.precision, 0.7);
  EXPECT_DOUBLE_EQ(s.recall, 0.7);
  EXPECT_DOUBLE_EQ(s.hausdorff, 1.5);
  EXPECT_LE(s.hd95, 1.5);
  EXPECT_GE(s.hd95, 1.0);
}

TEST(SurfaceDistance, IdenticalMasksScorePerfectly) {
  const auto m = square(16, 16, 2, 3, 7);
  const SegmentationScores s = score_masks(m, m, {1, 16, 16}, {1, 1, 1});
  EXPECT_DOUBLE_EQ(s.dice, 1.0);
  EXPECT_DOUBLE_EQ(s.hausdorff, 0.0);
  EXPECT_DOUBLE_EQ(s.hd95, 0.0);
}

TEST(SurfaceDistance, EmptyMasks) {
  const std::vector<uint8_t> empty(64, 0), one = square(8, 8, 1, 1, 3);
  const SegmentationScores none = score_masks(empty, empty, {1, 8, 8}, {1, 1, 1});
  EXPECT_TRUE(std::isnan(none.dice));
  EXPECT_TRUE(std::isnan(none.hausdorff));
  const SegmentationScores missed = score_masks(empty, one, {1, 8, 8}, {1, 1, 1});
  EXPECT_EQ(missed.dice, 0.0);
  EXPECT_TRUE(std::isinf(missed.hausdorff));
}

// 3D: a cube against the cube one slice deeper (slices 3 mm apart).
TEST(SurfaceDistance, CubeShiftedAlongSlices) {
  const std::array<int64_t, 3> dims{12, 12, 12};
  std::vector<uint8_t> a(12 * 12 * 12, 0), b(a);
  for (int64_t z = 2; z < 8; ++z)
    for (int64_t y = 2; y < 8; ++y)
      for (int64_t x = 2; x < 8; ++x) a[(z * 12 + y) * 12 + x] = 1, b[((z + 1) * 12 + y) * 12 + x] = 1;
  const SegmentationScores s = score_masks(a, b, dims, {3.0, 1.0, 1.0});
  EXPECT_DOUBLE_EQ(s.hausdorff, 3.0);
  EXPECT_DOUBLE_EQ(s.dice, 2.0 * 180 / 432);
}

}  // namespace
}  // namespace unet
