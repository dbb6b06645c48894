// fp32 <-> bf16 / fp16 conversion (the edges of mixed precision) over a U-Net
// activation: bytes/s.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "bench/counters.h"
#include "kernels/convert.h"

namespace unet {
namespace {

void BM_Convert(benchmark::State& state) {
  const int64_t n = int64_t(4) * 64 * 128 * 128;
  const DType half = state.range(0) ? DType::f16 : DType::bf16;
  const bool back = state.range(1);
  std::vector<float> x(static_cast<size_t>(n), 0.3f);
  std::vector<uint16_t> h(x.size());
  for (auto _ : state) {
    if (back)
      convert(h.data(), half, x.data(), DType::f32, n);
    else
      convert(x.data(), DType::f32, h.data(), half, n);
    benchmark::DoNotOptimize(h.data());
    benchmark::DoNotOptimize(x.data());
  }
  bench::report_bytes(state, double(n) * (4 + 2));
}
BENCHMARK(BM_Convert)->ArgNames({"fp16", "to_fp32"})->ArgsProduct({{0, 1}, {0, 1}})->UseRealTime();

}  // namespace
}  // namespace unet
