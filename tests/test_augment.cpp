#include "io/data/augment.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <thread>

namespace unet {
namespace {

Sample from(int64_t d, int64_t h, int64_t w, int dims, std::vector<float> image) {
  Sample s;
  s.d = d, s.h = h, s.w = w, s.dims = dims;
  s.image = std::move(image);
  s.label.resize(s.spatial());
  for (int64_t i = 0; i < s.spatial(); ++i) s.label[i] = static_cast<int32_t>(s.image[i]);
  return s;
}

// Blocks of classes 0..3 and an image of 100 * label in two channels (the
// second offset by 1000 inside the image, so that a channel mix-up shows).
Sample pattern(int64_t d, int64_t h, int64_t w, int dims, uint64_t seed) {
  Sample s;
  s.c = 2, s.d = d, s.h = h, s.w = w, s.dims = dims;
  std::mt19937_64 rng(seed);
  s.label.assign(s.spatial(), 0);
  for (int b = 0; b < 6; ++b) {
    const int64_t z0 = rng() % d, y0 = rng() % h, x0 = rng() % w, r = 2 + rng() % 5;
    const int32_t cls = 1 + rng() % 3;
    for (int64_t z = z0; z < std::min(d, z0 + r); ++z)
      for (int64_t y = y0; y < std::min(h, y0 + r); ++y)
        for (int64_t x = x0; x < std::min(w, x0 + r); ++x) s.label[(z * h + y) * w + x] = cls;
  }
  s.image.resize(2 * s.spatial());
  for (int64_t i = 0; i < s.spatial(); ++i) {
    s.image[i] = 100.f * s.label[i];
    s.image[s.spatial() + i] = 100.f * s.label[i] + 1000.f;
  }
  return s;
}

TEST(Augment, FlipExact) {
  Sample s = from(1, 2, 3, 2, {0, 1, 2, 3, 4, 5});
  flip(s, 2);
  EXPECT_EQ(s.image, (std::vector<float>{2, 1, 0, 5, 4, 3}));
  EXPECT_EQ(s.label, (std::vector<int32_t>{2, 1, 0, 5, 4, 3}));
  flip(s, 1);
  EXPECT_EQ(s.image, (std::vector<float>{5, 4, 3, 2, 1, 0}));
  Sample v = from(2, 1, 2, 3, {0, 1, 2, 3});
  flip(v, 0);
  EXPECT_EQ(v.image, (std::vector<float>{2, 3, 0, 1}));
  EXPECT_EQ(v.label, (std::vector<int32_t>{2, 3, 0, 1}));
}

TEST(Augment, Rot90ExactAsNumpy) {
  // numpy.rot90([[0, 1, 2], [3, 4, 5]], k) for k = 1, 2, 3.
  Sample s = from(1, 2, 3, 2, {0, 1, 2, 3, 4, 5});
  Sample a = s;
  rot90(a, 1);
  EXPECT_EQ(a.h, 3);
  EXPECT_EQ(a.w, 2);
  EXPECT_EQ(a.image, (std::vector<float>{2, 5, 1, 4, 0, 3}));
  EXPECT_EQ(a.label, (std::vector<int32_t>{2, 5, 1, 4, 0, 3}));
  Sample b = s;
  rot90(b, 2);
  EXPECT_EQ(b.image, (std::vector<float>{5, 4, 3, 2, 1, 0}));
  Sample c = s;
  rot90(c, 3);
  EXPECT_EQ(c.image, (std::vector<float>{3, 0, 4, 1, 5, 2}));
  Sample e = s;
  for (int i = 0; i < 4; ++i) rot90(e, 1);
  EXPECT_EQ(e.image, s.image);
  // 3D: every plane turns alike.
  Sample v = from(2, 2, 2, 3, {0, 1, 2, 3, 4, 5, 6, 7});
  rot90(v, 1);
  EXPECT_EQ(v.image, (std::vector<float>{1, 3, 0, 2, 5, 7, 4, 6}));
}

TEST(Augment, ResampleQuarterTurnMatchesRot90) {
  Sample s = pattern(1, 9, 9, 2, 1), r = s;
  rot90(r, 1);
  // rot90's output (i, j) reads input (j, w-1-i): y_in = x_out, x_in = -y_out about the centre.
  resample(s, {1, 0, 0, 0, 0, 1, 0, -1, 0}, nullptr, Interp::linear, 0, 0);
  EXPECT_EQ(s.label, r.label);
  for (size_t i = 0; i < s.image.size(); ++i) EXPECT_NEAR(s.image[i], r.image[i], 1e-3);
}

TEST(Augment, IdentityWhenOff) {
  for (int dims : {2, 3}) {
    Sample s = pattern(dims == 3 ? 6 : 1, 12, 10, dims, 2);
    std::mt19937_64 noise(5);
    for (auto& v : s.image) v += std::uniform_real_distribution<float>(-1, 1)(noise);
    AugmentSpec spec;
    spec.off();
    Sample a = s;
    auto rng = sample_rng(1, 2, 3);
    augment(a, spec, rng);
    EXPECT_EQ(0, std::memcmp(a.image.data(), s.image.data(), s.image.size() * 4));
    EXPECT_EQ(a.label, s.label);
    AugmentSpec disabled;
    disabled.enabled = false;
    Sample b = s;
    augment(b, disabled, rng);
    EXPECT_EQ(0, std::memcmp(b.image.data(), s.image.data(), s.image.size() * 4));
  }
}

// One spatial transform at a time, probability 1.
std::vector<std::pair<const char*, AugmentSpec>> spatial_specs() {
  std::vector<std::pair<const char*, AugmentSpec>> out;
  auto add = [&](const char* name, auto set) {
    AugmentSpec a;
    a.off();
    set(a);
    out.push_back({name, a});
  };
  add("flip", [](AugmentSpec& a) { a.p_flip = 1; });
  add("rot90", [](AugmentSpec& a) { a.p_rot90 = 1; });
  add("rotate", [](AugmentSpec& a) { a.p_rotate = 1; });
  add("scale", [](AugmentSpec& a) { a.p_scale = 1; });
  add("elastic", [](AugmentSpec& a) { a.p_elastic = 1; });
  add("all", [](AugmentSpec& a) { a.p_flip = a.p_rot90 = a.p_rotate = a.p_scale = a.p_elastic = 1; });
  return out;
}

TEST(Augment, SpatialKeepsImageAndLabelAlignedNearest) {
  for (int dims : {2, 3})
    for (auto [name, spec] : spatial_specs())
      for (int64_t i = 0; i < 4; ++i) {
        Sample s = pattern(dims == 3 ? 10 : 1, 20, 20, dims, i);
        const std::vector<int32_t> before = s.label;
        spec.image_interp = Interp::nearest;
        auto rng = sample_rng(4, 0, i);
        augment(s, spec, rng);
        EXPECT_NE(s.label, before) << name << ": nothing moved";
        const int64_t n = s.spatial();
        for (int64_t j = 0; j < n; ++j) {
          ASSERT_EQ(s.image[j], 100.f * s.label[j]) << name << " dims " << dims << " voxel " << j;
          // Fill is 0 in both channels: inside, the second channel is the first + 1000.
          if (s.image[n + j] != 0) {
            ASSERT_EQ(s.image[n + j], s.image[j] + 1000) << name;
          }
        }
      }
}

TEST(Augment, SpatialKeepsImageAndLabelAlignedLinear) {
  for (int dims : {2, 3})
    for (auto [name, spec] : spatial_specs())
      for (int64_t i = 0; i < 4; ++i) {
        Sample s = pattern(dims == 3 ? 10 : 1, 24, 24, dims, i + 10);
        auto rng = sample_rng(8, 1, i);
        augment(s, spec, rng);
        // Linear blends across class borders; nearest picks one side. Away from
        // borders they agree exactly, and nowhere do they differ by a class step
        // of the far side of the range.
        int64_t agree = 0;
        for (int64_t j = 0; j < s.spatial(); ++j) {
          const double diff = std::fabs(s.image[j] / 100.0 - s.label[j]);
          ASSERT_LT(diff, 3.0) << name;
          agree += diff < 0.5;
        }
        EXPECT_GT(agree, 0.85 * s.spatial()) << name << " dims " << dims;
      }
}

TEST(Augment, InPlaneRotationKeepsSlices) {
  Sample s;
  s.d = 10, s.h = 15, s.w = 15, s.dims = 3;
  s.label.resize(s.spatial());
  s.image.resize(s.spatial());
  for (int64_t i = 0; i < s.spatial(); ++i) s.label[i] = i / (15 * 15) >= 5, s.image[i] = 100.f * s.label[i];
  AugmentSpec a;
  a.off();
  a.p_rotate = 1;
  a.rotate_in_plane = true;
  a.image_interp = Interp::nearest;
  for (int64_t k = 0; k < 5; ++k) {
    Sample t = s;
    auto rng = sample_rng(6, 0, k);
    augment(t, a, rng);
    for (int64_t z = 0; z < 10; ++z)
      for (int64_t j = 0; j < 225; ++j) {
        const int64_t i = z * 225 + j;
        if (z < 5) {
          ASSERT_EQ(t.label[i], 0);
        }
        ASSERT_EQ(t.image[i], 100.f * t.label[i]);
      }
    for (int64_t z = 5; z < 10; ++z) EXPECT_EQ(t.label[z * 225 + 7 * 15 + 7], 1);  // the axis stays
  }
}

TEST(Augment, FlipsAndRot90AreExactUnderLinear) {
  for (const char* which : {"flip", "rot90"}) {
    AugmentSpec a;
    a.off();
    (std::string(which) == "flip" ? a.p_flip : a.p_rot90) = 1;
    Sample s = pattern(1, 16, 16, 2, 3);
    auto rng = sample_rng(0, 0, 0);
    augment(s, a, rng);
    for (int64_t j = 0; j < s.spatial(); ++j) ASSERT_EQ(s.image[j], 100.f * s.label[j]) << which;
  }
}

TEST(Augment, ShapeKeptForNonSquarePlanes) {
  AugmentSpec a;
  a.p_rot90 = 1;
  a.p_elastic = 1;
  for (int64_t i = 0; i < 8; ++i) {
    Sample s = pattern(1, 12, 20, 2, i);
    auto rng = sample_rng(1, 0, i);
    augment(s, a, rng);
    EXPECT_EQ(s.shape(), shape2d(1, 2, 12, 20));
    EXPECT_EQ(s.image.size(), 2u * 240u);
    EXPECT_EQ(s.label.size(), 240u);
  }
}

TEST(Augment, IntensityTransformsLeaveLabels) {
  AugmentSpec a;
  a.off();
  a.p_brightness = a.p_contrast = a.p_gamma = a.p_noise = a.p_blur = 1;
  Sample s = pattern(4, 16, 16, 3, 9), t = s;
  auto rng = sample_rng(2, 2, 2);
  augment(t, a, rng);
  EXPECT_EQ(t.label, s.label);
  EXPECT_NE(t.image, s.image);
  for (float v : t.image) EXPECT_TRUE(std::isfinite(v));
}

TEST(Augment, IntensityHandValues) {
  AugmentSpec a;
  a.off();
  a.p_brightness = 1;
  a.brightness_lo = a.brightness_hi = 2;
  Sample s = from(1, 1, 3, 2, {1, 2, 3});
  auto rng = sample_rng(0, 0, 0);
  augment(s, a, rng);
  EXPECT_EQ(s.image, (std::vector<float>{2, 4, 6}));
  a.off();
  a.p_contrast = 1;
  a.contrast_lo = a.contrast_hi = 2;
  augment(s, a, rng);  // mean 4: 4 + 2 (x - 4)
  EXPECT_EQ(s.image, (std::vector<float>{0, 4, 8}));
  a.off();
  a.p_gamma = 1;
  a.gamma_lo = a.gamma_hi = 2;
  augment(s, a, rng);  // on [0, 8]: 8 (x / 8)^2
  EXPECT_EQ(s.image, (std::vector<float>{0, 2, 8}));
  // A blur keeps a constant image constant (edges replicate) and spreads a spike.
  std::vector<float> flat(5 * 7 * 3, 4.f);
  gaussian_blur(flat.data(), 5, 7, 3, 3, 1.0);
  for (float v : flat) EXPECT_NEAR(v, 4.f, 1e-5);
  std::vector<float> spike(9 * 9, 0.f);
  spike[40] = 1;
  gaussian_blur(spike.data(), 1, 9, 9, 2, 1.0);
  double sum = 0;
  for (float v : spike) sum += v;
  EXPECT_NEAR(sum, 1.0, 1e-5);
  EXPECT_NEAR(spike[40] / spike[41], std::exp(0.5), 1e-4);
}

// The whole sample path, as a loader worker runs it.
Sample make(const Sample& src, uint64_t seed, int64_t epoch, int64_t index) {
  PatchSpec p;
  p.size = {src.dims == 3 ? 8 : 1, 16, 16};
  auto rng = sample_rng(seed, epoch, index);
  Sample s = extract_patch(src, p, rng);
  AugmentSpec a;
  a.p_elastic = 0.5;
  a.p_rotate = a.p_scale = a.p_noise = 0.5;
  augment(s, a, rng);
  return s;
}

TEST(Augment, DeterministicAcrossThreads) {
  for (int dims : {2, 3}) {
    const Sample src = pattern(dims == 3 ? 12 : 1, 30, 30, dims, 77);
    const int n = 24;
    std::vector<Sample> ref;
    for (int i = 0; i < n; ++i) ref.push_back(make(src, 42, 3, i));
    for (int threads : {2, 3, 5}) {
      std::vector<Sample> got(n);
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
          for (int i = n - 1 - t; i >= 0; i -= threads) got[i] = make(src, 42, 3, i);  // reverse order
        });
      for (auto& th : pool) th.join();
      for (int i = 0; i < n; ++i) {
        ASSERT_EQ(got[i].image.size(), ref[i].image.size());
        EXPECT_EQ(0, std::memcmp(got[i].image.data(), ref[i].image.data(), ref[i].image.size() * 4))
            << "sample " << i << " threads " << threads;
        EXPECT_EQ(got[i].label, ref[i].label);
      }
    }
    EXPECT_NE(make(src, 42, 3, 0).image, make(src, 42, 4, 0).image);  // the epoch matters
  }
}

TEST(Augment, RateMapsSamplesToCases) {
  AugmentSpec a;
  EXPECT_EQ(samples_per_epoch(10, a), 10);
  EXPECT_TRUE(sample_ref(3, 10, a).augment);
  a.rate = 2;
  EXPECT_EQ(samples_per_epoch(10, a), 30);
  const SampleRef r0 = sample_ref(3, 10, a), r1 = sample_ref(13, 10, a), r2 = sample_ref(29, 10, a);
  EXPECT_EQ(r0.case_index, 3);
  EXPECT_EQ(r0.copy, 0);
  EXPECT_FALSE(r0.augment);
  EXPECT_EQ(r1.case_index, 3);
  EXPECT_EQ(r1.copy, 1);
  EXPECT_TRUE(r1.augment);
  EXPECT_EQ(r2.case_index, 9);
  EXPECT_EQ(r2.copy, 2);
  a.enabled = false;
  EXPECT_EQ(samples_per_epoch(10, a), 10);
  EXPECT_FALSE(sample_ref(3, 10, a).augment);
  a.enabled = true;
  a.rate = -1;
  EXPECT_THROW(samples_per_epoch(10, a), std::invalid_argument);
}

}  // namespace
}  // namespace unet
