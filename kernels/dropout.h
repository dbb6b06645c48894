// Dropout, seeded and reproducible: element i of a call with (seed, offset) is
// kept when uniform(seed, offset, i) >= rate and then scaled by 1 / (1 - rate).
// The mask is never stored: backward recomputes it from the same (seed, offset),
// and i is the element's logical index (first_sample + n) * sample + within-sample, so the mask
// does not depend on the buffer layout or the number of threads. The trainer
// passes the step number as offset so that every step draws a new mask.
//
// Memory contract
//   dropout_forward:  reads x; overwrites y (y may be x: in place).
//   dropout_backward: reads dy; overwrites dx (dx may be dy: in place).
#pragma once

#include "kernels/base/tensor.h"
#include "kernels/base/common.h"

namespace unet {

struct DropoutSpec {
  float rate = 0.f;  // probability of dropping, in [0, 1)
  uint64_t seed = 0;
  uint64_t offset = 0;
  // The batch's first sample within the global batch (data parallelism: rank r
  // starts at r x its batch), so that a sample's mask is the same however the
  // global batch is split over ranks.
  int64_t first_sample = 0;
};

// A counter-based generator (SplitMix64 finalizer over seed, offset, index):
// uniform in [0, 1), identical on host and device.
UNET_HD float dropout_uniform(uint64_t seed, uint64_t offset, uint64_t index) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + offset * 0xD1B54A32D192ED03ull + index;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  // 24 random bits; through int32 because uint64 -> float does not vectorize on x86-64.
  return static_cast<float>(static_cast<int32_t>(z >> 40)) * (1.0f / 16777216.0f);
}

// The factor element `index` is multiplied by: 0 or 1 / (1 - rate).
UNET_HD float dropout_factor(const DropoutSpec& s, uint64_t index) {
  return dropout_uniform(s.seed, s.offset, index) >= s.rate ? 1.f / (1.f - s.rate) : 0.f;
}

void dropout_forward(const Tensor& x, const Tensor& y, const DropoutSpec& spec);
void dropout_backward(const Tensor& dy, const Tensor& dx, const DropoutSpec& spec);

#ifdef UNET_CUDA
// The same contract on device pointers; the same masks as the CPU's, bit for bit.
void dropout_forward_cuda(const Tensor& x, const Tensor& y, const DropoutSpec& spec, Stream stream);
void dropout_backward_cuda(const Tensor& dy, const Tensor& dx, const DropoutSpec& spec, Stream stream);
#endif

}  // namespace unet
