// bf16 and fp16: the 16-bit storage types of mixed precision (--precision
// bf16|fp16), and their conversions to and from fp32, written once for the host
// and the GPU kernels (UNET_HD). Values are computed in fp32 and stored in 16
// bits, rounding to nearest, ties to even, as cuda_bf16.h's and cuda_fp16.h's
// __float2bfloat16_rn and __float2half_rn do; NaN stays NaN, and fp16 turns what
// exceeds its range (65504) into infinity, which the loss scaler then sees.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/base/common.h"

namespace unet {

struct bf16 {
  uint16_t bits;
};
struct f16 {
  uint16_t bits;
};

UNET_HD uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
UNET_HD float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

UNET_HD uint16_t bf16_from_float(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
UNET_HD float bf16_to_float(uint16_t h) { return bits_float(uint32_t(h) << 16); }

UNET_HD uint16_t f16_from_float(float f) {
  const uint32_t u = float_bits(f);
  const uint32_t sign = (u >> 16) & 0x8000u, x = u & 0x7fffffffu;
  if (x > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (x >= 0x47800000u) return static_cast<uint16_t>(sign | 0x7c00u);  // 65536 and up (and infinity)
  if (x < 0x38800000u) {  // below 2^-14: an fp16 subnormal, in units of 2^-24
    if (x < 0x33000000u) return static_cast<uint16_t>(sign);  // below 2^-25: zero
    const uint32_t shift = 126u - (x >> 23), m = (x & 0x7fffffu) | 0x800000u;
    uint32_t h = m >> shift;
    const uint32_t rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rest > half || (rest == half && (h & 1u))) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = (x - 0x38000000u) >> 13;  // exponent 127 -> 15 bias; may round up to infinity
  const uint32_t rest = x & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}
UNET_HD float f16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {  // zero or subnormal: m units of 2^-24, exact in fp32
    const float v = float(m) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  if (e == 31) return bits_float(sign | 0x7f800000u | (m << 13));
  return bits_float(sign | ((e + 112u) << 23) | (m << 13));
}

// The kernels' element access: fp32 math on any storage type.
UNET_HD float load(const float* p) { return *p; }
UNET_HD float load(const bf16* p) { return bf16_to_float(p->bits); }
UNET_HD float load(const f16* p) { return f16_to_float(p->bits); }
UNET_HD void store(float* p, float v) { *p = v; }
UNET_HD void store(bf16* p, float v) { p->bits = bf16_from_float(v); }
UNET_HD void store(f16* p, float v) { p->bits = f16_from_float(v); }

}  // namespace unet
