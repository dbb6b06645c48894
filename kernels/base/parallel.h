// Deterministic parallel reductions for the CPU backend.
//
// The range is cut into fixed-size chunks whatever the number of threads; each
// chunk's partial sum is kept in double and the partials are added in chunk
// order. The result is then bit-identical across runs and thread counts, which
// resuming a run bit-for-bit relies on.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/base/tensor.h"

namespace unet {

constexpr int64_t kReduceChunk = 4096;

// Sums fn(begin, end) -> double over [0, count) in chunks.
template <class Fn>
double deterministic_sum(int64_t count, Fn fn) {
  const int64_t chunks = (count + kReduceChunk - 1) / kReduceChunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < chunks; ++i) {
    const int64_t b = i * kReduceChunk;
    const int64_t e = b + kReduceChunk < count ? b + kReduceChunk : count;
    partial[static_cast<size_t>(i)] = fn(b, e);
  }
  double s = 0;
  for (double p : partial) s += p;
  return s;
}

// The same for K sums at once: fn(begin, end, double* out_k) adds into out_k.
template <class Fn>
std::vector<double> deterministic_sums(int64_t count, int k, Fn fn) {
  const int64_t chunks = (count + kReduceChunk - 1) / kReduceChunk;
  std::vector<double> partial(static_cast<size_t>(chunks * k), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < chunks; ++i) {
    const int64_t b = i * kReduceChunk;
    const int64_t e = b + kReduceChunk < count ? b + kReduceChunk : count;
    fn(b, e, partial.data() + i * k);
  }
  std::vector<double> s(static_cast<size_t>(k), 0.0);
  for (int64_t i = 0; i < chunks; ++i)
    for (int j = 0; j < k; ++j) s[static_cast<size_t>(j)] += partial[static_cast<size_t>(i * k + j)];
  return s;
}

// sums[c] += the sum of channel c over every sample and position (bias and
// normalization-shift gradients).
inline void add_channel_sums(const Tensor& t, float* sums) {
  const int64_t plane = t.shape.spatial();
  for (int64_t c = 0; c < t.shape.c; ++c) {
    double total = 0;
    for (int64_t n = 0; n < t.shape.n; ++n) {
      const float* p = t.channel(n, c);
      total += deterministic_sum(plane, [p](int64_t b, int64_t e) {
        double s = 0;
        for (int64_t i = b; i < e; ++i) s += p[i];
        return s;
      });
    }
    sums[c] += static_cast<float>(total);
  }
}

}  // namespace unet
