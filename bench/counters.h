// Counters every kernel benchmark reports: FLOP/s for compute-bound kernels,
// bytes/s for memory-bound ones, and, when the device's peak is given in the
// environment (UNET_PEAK_GFLOPS, UNET_PEAK_GBPS), the fraction of it reached.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>

namespace unet::bench {

inline double env_peak(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atof(v) : 0.0;
}

// flops: floating-point operations of one iteration (a multiply-add is 2).
inline void report_flops(benchmark::State& state, double flops) {
  state.counters["FLOP/s"] = benchmark::Counter(flops * double(state.iterations()), benchmark::Counter::kIsRate);
  if (const double peak = env_peak("UNET_PEAK_GFLOPS"); peak > 0)
    state.counters["peak"] =
        benchmark::Counter(flops * double(state.iterations()) / (peak * 1e9), benchmark::Counter::kIsRate);
}

// bytes: bytes read plus bytes written by one iteration.
inline void report_bytes(benchmark::State& state, double bytes) {
  state.SetBytesProcessed(static_cast<int64_t>(bytes * double(state.iterations())));
  if (const double peak = env_peak("UNET_PEAK_GBPS"); peak > 0)
    state.counters["peak"] =
        benchmark::Counter(bytes * double(state.iterations()) / (peak * 1e9), benchmark::Counter::kIsRate);
}

}  // namespace unet::bench
