// Dropout forward and backward over a U-Net bottleneck activation: bytes/s.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/counters.h"
#include "kernels/dropout.h"

namespace unet {
namespace {

void BM_Dropout(benchmark::State& state) {
  const Shape s = shape2d(4, 256, 64, 64);
  std::vector<float> x(s.count(), 1.f), y(x.size());
  const bool backward = state.range(0);
  uint64_t step = 0;
  for (auto _ : state) {
    const DropoutSpec spec{0.5f, 1, step++};
    if (backward)
      dropout_backward(Tensor(x.data(), s), Tensor(y.data(), s), spec);
    else
      dropout_forward(Tensor(x.data(), s), Tensor(y.data(), s), spec);
    benchmark::DoNotOptimize(y.data());
  }
  bench::report_bytes(state, 2.0 * double(s.count()) * sizeof(float));
}
BENCHMARK(BM_Dropout)->ArgName("backward")->Arg(0)->Arg(1)->UseRealTime();

}  // namespace
}  // namespace unet
