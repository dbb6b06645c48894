#include "io/data/patch.h"

#include <gtest/gtest.h>

#include <numeric>

namespace unet {
namespace {

// A sample whose image voxel i holds i (channel c: i + 1000 c), labels given.
Sample coded(int64_t c, int64_t d, int64_t h, int64_t w, int dims) {
  Sample s;
  s.c = c, s.d = d, s.h = h, s.w = w, s.dims = dims;
  s.image.resize(c * d * h * w);
  for (int64_t i = 0; i < static_cast<int64_t>(s.image.size()); ++i)
    s.image[i] = static_cast<float>(i % s.spatial() + 1000 * (i / s.spatial()));
  s.label.assign(s.spatial(), 0);
  return s;
}

TEST(Patch, KeyDependsOnEveryPart) {
  EXPECT_EQ(sample_key(1, 2, 3), sample_key(1, 2, 3));
  EXPECT_NE(sample_key(1, 2, 3), sample_key(2, 2, 3));
  EXPECT_NE(sample_key(1, 2, 3), sample_key(1, 3, 3));
  EXPECT_NE(sample_key(1, 2, 3), sample_key(1, 2, 4));
  EXPECT_NE(sample_key(1, 2, 3), sample_key(1, 2, 3, 1));
  EXPECT_NE(sample_key(0, 0, 1), sample_key(0, 1, 0));
  auto a = sample_rng(7, 1, 5), b = sample_rng(7, 1, 5);
  EXPECT_EQ(a(), b());
}

TEST(Patch, CropInsideCopiesTheWindow) {
  const Sample s = coded(2, 1, 6, 7, 2);
  const Sample p = crop(s, {0, 2, 3}, {1, 3, 4}, -1.f, -1);
  ASSERT_EQ(p.h, 3);
  ASSERT_EQ(p.w, 4);
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t y = 0; y < 3; ++y)
      for (int64_t x = 0; x < 4; ++x)
        EXPECT_EQ(p.image[c * 12 + y * 4 + x], 1000 * c + (y + 2) * 7 + x + 3);
  for (int32_t v : p.label) EXPECT_EQ(v, 0);
}

TEST(Patch, CropOutsidePads) {
  const Sample s = coded(1, 2, 3, 3, 3);
  const Sample p = crop(s, {-1, -1, 1}, {4, 4, 4}, -5.f, 9);
  for (int64_t z = 0; z < 4; ++z)
    for (int64_t y = 0; y < 4; ++y)
      for (int64_t x = 0; x < 4; ++x) {
        const int64_t sz = z - 1, sy = y - 1, sx = x + 1, i = (z * 4 + y) * 4 + x;
        const bool inside = sz >= 0 && sz < 2 && sy >= 0 && sy < 3 && sx < 3;
        EXPECT_EQ(p.image[i], inside ? float((sz * 3 + sy) * 3 + sx) : -5.f) << z << y << x;
        EXPECT_EQ(p.label[i], inside ? 0 : 9);
      }
}

TEST(Patch, ShapeRules) {
  PatchSpec spec;
  spec.size = {1, 32, 0};
  EXPECT_EQ(patch_shape(shape2d(1, 2, 50, 40), spec), shape2d(1, 2, 32, 40));
  spec.size = {16, 32, 32};
  EXPECT_EQ(patch_shape(shape3d(1, 1, 64, 128, 128), spec), shape3d(1, 1, 16, 32, 32));
  EXPECT_THROW(patch_shape(shape2d(1, 1, 64, 64), spec), std::invalid_argument);
  spec.whole = true;
  spec.multiple = 16;
  EXPECT_EQ(patch_shape(shape2d(1, 1, 50, 30), spec), shape2d(1, 1, 64, 32));
  EXPECT_EQ(patch_shape(shape3d(1, 1, 20, 50, 30), spec), shape3d(1, 1, 32, 64, 32));
}

TEST(Patch, RandomPatchIsAWindowOfTheImage) {
  const Sample s = coded(1, 1, 40, 30, 2);
  PatchSpec spec;
  spec.size = {1, 16, 8};
  spec.foreground_fraction = 0;
  for (int64_t i = 0; i < 50; ++i) {
    auto rng = sample_rng(3, 0, i);
    const Sample p = extract_patch(s, spec, rng);
    ASSERT_EQ(p.image.size(), 16u * 8u);
    const int64_t y0 = int64_t(p.image[0]) / 30, x0 = int64_t(p.image[0]) % 30;
    ASSERT_LE(y0 + 16, 40);
    ASSERT_LE(x0 + 8, 30);
    for (int64_t y = 0; y < 16; ++y)
      for (int64_t x = 0; x < 8; ++x) ASSERT_EQ(p.image[y * 8 + x], float((y0 + y) * 30 + x0 + x));
  }
}

TEST(Patch, SmallImageIsPaddedWhole) {
  Sample s = coded(1, 1, 5, 5, 2);
  s.label.assign(25, 1);
  PatchSpec spec;
  spec.size = {1, 8, 8};
  spec.pad_value = -7;
  spec.pad_label = -1;
  for (int64_t i = 0; i < 20; ++i) {
    auto rng = sample_rng(1, 0, i);
    const Sample p = extract_patch(s, spec, rng);
    int inside = 0;
    double sum = 0;
    for (int64_t j = 0; j < 64; ++j) {
      if (p.image[j] != -7.f) ++inside, sum += p.image[j];
      EXPECT_EQ(p.label[j], p.image[j] == -7.f ? -1 : 1);
    }
    EXPECT_EQ(inside, 25);
    EXPECT_EQ(sum, 300);  // 0 + 1 + ... + 24: every image voxel is in
  }
}

TEST(Patch, ForegroundOversamplingFraction) {
  Sample s = coded(1, 1, 64, 64, 2);
  const int64_t fy = 50, fx = 9;
  s.label[fy * 64 + fx] = 1;
  const ForegroundIndex fg = index_foreground(s);
  ASSERT_EQ(fg.classes.size(), 1u);
  PatchSpec spec;
  spec.size = {1, 16, 16};
  const int n = 3000;
  int centred = 0, containing = 0;
  for (int i = 0; i < n; ++i) {
    auto rng = sample_rng(11, 2, i);
    bool c = false;
    const Sample p = extract_patch(s, spec, rng, i % 2 ? &fg : nullptr, &c);
    const bool has = std::count(p.label.begin(), p.label.end(), 1) == 1;
    if (c) {
      ++centred;
      EXPECT_TRUE(has);
    }
    containing += has;
  }
  // 1/3 centred; a random 16x16 window of 64x64 (origins 0..48 on each axis)
  // holds voxel (50, 9) for 14 y origins (35..48) and 10 x origins (0..9).
  EXPECT_NEAR(centred / double(n), 1.0 / 3, 0.035);
  EXPECT_NEAR(containing / double(n), 1.0 / 3 + 2.0 / 3 * (14.0 / 49) * (10.0 / 49), 0.035);
}

TEST(Patch, ForegroundClassesShareEvenly) {
  Sample s = coded(1, 1, 64, 64, 2);
  for (int64_t i = 0; i < 2000; ++i) s.label[i] = 1;  // common class
  s.label[4000] = 2;                                  // rare class, one voxel
  PatchSpec spec;
  spec.size = {1, 8, 8};
  spec.foreground_fraction = 1;
  int rare = 0;
  const int n = 2000;
  for (int i = 0; i < n; ++i) {
    auto rng = sample_rng(5, 0, i);
    const Sample p = extract_patch(s, spec, rng);
    rare += std::count(p.label.begin(), p.label.end(), 2) > 0;
  }
  EXPECT_NEAR(rare / double(n), 0.5, 0.05);
}

TEST(Patch, NoForegroundFallsBackToRandom) {
  const Sample s = coded(1, 1, 20, 20, 2);
  PatchSpec spec;
  spec.size = {1, 8, 8};
  spec.foreground_fraction = 1;
  auto rng = sample_rng(1, 1, 1);
  bool c = true;
  const Sample p = extract_patch(s, spec, rng, nullptr, &c);
  EXPECT_FALSE(c);
  EXPECT_EQ(p.image.size(), 64u);
}

TEST(Patch, ThreeDimensionalAndDeterministic) {
  Sample s = coded(2, 20, 24, 28, 3);
  s.label[(10 * 24 + 12) * 28 + 14] = 1;
  PatchSpec spec;
  spec.size = {8, 8, 8};
  for (int64_t i = 0; i < 10; ++i) {
    auto r1 = sample_rng(9, 4, i), r2 = sample_rng(9, 4, i);
    const Sample a = extract_patch(s, spec, r1), b = extract_patch(s, spec, r2);
    EXPECT_EQ(a.shape(), shape3d(1, 2, 8, 8, 8));
    EXPECT_EQ(a.image, b.image);
    EXPECT_EQ(a.label, b.label);
    // The second channel is the first plus 1000: one window for both.
    for (int64_t j = 0; j < 512; ++j) EXPECT_EQ(a.image[512 + j], a.image[j] + 1000);
  }
}

TEST(Patch, WholeImagePadsToMultiple) {
  const Sample s = coded(1, 1, 50, 30, 2);
  PatchSpec spec;
  spec.whole = true;
  spec.multiple = 16;
  auto rng = sample_rng(0, 0, 0);
  const Sample p = extract_patch(s, spec, rng);
  EXPECT_EQ(p.shape(), shape2d(1, 1, 64, 32));
  EXPECT_EQ(p.image[49 * 32 + 29], 49 * 30 + 29);
  EXPECT_EQ(p.image[50 * 32], 0.f);
}

TEST(Patch, WriteToBatch) {
  const Sample s = coded(2, 1, 2, 3, 2);
  std::vector<float> image(12);
  std::vector<int32_t> label(6, 5);
  write_to(s, shape2d(4, 2, 2, 3), image.data(), label.data());
  EXPECT_EQ(image, s.image);
  EXPECT_EQ(label, s.label);
  Sample u = s;
  u.label.clear();
  write_to(u, shape2d(4, 2, 2, 3), image.data(), label.data(), -1);
  EXPECT_EQ(label, std::vector<int32_t>(6, -1));
  EXPECT_THROW(write_to(s, shape2d(4, 2, 3, 3), image.data(), label.data()), std::invalid_argument);
  EXPECT_THROW(write_to(s, shape3d(4, 2, 1, 2, 3), image.data(), label.data()), std::invalid_argument);
}

}  // namespace
}  // namespace unet
