// half.h's bf16 and fp16 rounding and convert(): the arithmetic the CUDA
// kernels of mixed precision run (they include the same functions), checked on
// the CPU against independent references: GCC's _Float16 for fp16 (libgcc's
// round-to-nearest-even), and for bf16 the nearest of the two bf16 neighbours
// found in double arithmetic.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/convert.h"
#include "kernels/base/half.h"

namespace unet {
namespace {

// Floats of every exponent, both signs, and the edge cases.
std::vector<float> probes() {
  std::vector<float> v{0.f, -0.f, 1.f, -1.f, 65504.f, 65519.996f, 65520.f, 65536.f, 1e-8f, 2.9802322e-8f,
                       5.9604645e-8f, 6.1035156e-5f, 3e-5f, std::numeric_limits<float>::max(),
                       std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::infinity(),
                       -std::numeric_limits<float>::infinity()};
  std::mt19937 rng(5);
  for (int i = 0; i < 400000; ++i) v.push_back(bits_float(rng()));
  // Exact ties: a float halfway between two fp16 (and two bf16) values.
  for (uint32_t m = 0; m < 4096; ++m) v.push_back(bits_float(0x3f800000u | (m << 12) | 0x1000u));
  for (uint32_t m = 0; m < 4096; ++m) v.push_back(bits_float(0x3f800000u | (m << 16) | 0x8000u));
  return v;
}

#ifdef __FLT16_MAX__
TEST(Convert, Fp16RoundsAsTheCompilersFloat16) {
  for (float f : probes()) {
    if (std::isnan(f)) continue;
    const _Float16 h = static_cast<_Float16>(f);
    uint16_t want;
    std::memcpy(&want, &h, sizeof want);
    ASSERT_EQ(f16_from_float(f), want) << f;
  }
}
#endif

TEST(Convert, Fp16KnownValues) {
  EXPECT_EQ(f16_from_float(1.f), 0x3c00);
  EXPECT_EQ(f16_from_float(65504.f), 0x7bff);     // the largest fp16
  EXPECT_EQ(f16_from_float(65520.f), 0x7c00);     // rounds past it: infinity
  EXPECT_EQ(f16_from_float(5.9604645e-8f), 0x0001);  // the smallest subnormal
  EXPECT_EQ(f16_from_float(1e-8f), 0x0000);        // flushed: what loss scaling prevents
  EXPECT_EQ(f16_from_float(-2.f), 0xc000);
  EXPECT_TRUE(std::isnan(f16_to_float(f16_from_float(NAN))));
}

TEST(Convert, Fp16EveryValueRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_float(uint16_t(h));
    if (std::isnan(f)) {
      EXPECT_EQ(h & 0x7c00u, 0x7c00u);
      continue;
    }
    ASSERT_EQ(f16_from_float(f), h) << std::hex << h;
  }
}

TEST(Convert, Bf16RoundsToTheNearestTiesToEven) {
  for (float f : probes()) {
    if (std::isnan(f)) continue;
    const uint16_t got = bf16_from_float(f);
    // The two bf16 values around f (truncation and the next one up in magnitude).
    const uint16_t lo = uint16_t(float_bits(f) >> 16), hi = uint16_t(lo + 1);
    // Past the largest finite bf16 the next value up is 2^128 (which rounds to infinity).
    const bool past = (hi & 0x7f80u) == 0x7f80u && (lo & 0x7f80u) != 0x7f80u;
    const double a = bf16_to_float(lo), b = past ? std::copysign(std::ldexp(1.0, 128), f) : double(bf16_to_float(hi));
    const double da = std::fabs(double(f) - a), db = std::fabs(double(f) - b);
    const uint16_t want = std::isinf(f) ? lo : da < db ? lo : db < da ? hi : (lo & 1u ? hi : lo);
    ASSERT_EQ(got, want) << f;
  }
  EXPECT_EQ(bf16_from_float(1.f / 3.f), 0x3eab);
  EXPECT_TRUE(std::isnan(bf16_to_float(bf16_from_float(NAN))));
}

TEST(Convert, ConvertsArraysAndAccumulatesInFp32) {
  const std::vector<float> x{1.f, 1.f / 3.f, -2.5f, 1e-3f};
  for (DType t : {DType::bf16, DType::f16}) {
    std::vector<uint16_t> h(x.size());
    convert(x.data(), DType::f32, h.data(), t, int64_t(x.size()));
    std::vector<float> y(x.size(), 10.f);
    convert(h.data(), t, y.data(), DType::f32, int64_t(x.size()), GradMode::accumulate);
    for (size_t i = 0; i < x.size(); ++i) {
      const float r = t == DType::bf16 ? bf16_to_float(h[i]) : f16_to_float(h[i]);
      EXPECT_EQ(r, t == DType::bf16 ? bf16_to_float(bf16_from_float(x[i])) : f16_to_float(f16_from_float(x[i])));
      EXPECT_EQ(y[i], 10.f + r) << dtype_name(t);
      EXPECT_NEAR(r, x[i], std::fabs(x[i]) * (t == DType::bf16 ? 1.0 / 256 : 1.0 / 2048));
    }
  }
}

}  // namespace
}  // namespace unet
