// Optimizer steps and the gradient norm over a 31M-parameter buffer (the 2D
// U-Net with 64 start filters): bytes/s.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/counters.h"
#include "kernels/optimizer.h"

namespace unet {
namespace {

constexpr int64_t kParams = 31'000'000;

void BM_OptimizerStep(benchmark::State& state) {
  OptimizerSpec spec;
  spec.kind = static_cast<OptimizerKind>(state.range(0));
  spec.weight_decay = 1e-4f;
  std::vector<float> p(kParams, 0.1f), g(kParams, 0.01f), m(kParams, 0.f), v(kParams, 0.f);
  int64_t step = 1;
  for (auto _ : state) {
    optimizer_step(p.data(), g.data(), m.data(), v.data(), kParams, spec, 1e-3f, step++, 1.f);
    benchmark::DoNotOptimize(p.data());
  }
  // SGD: p, g, m read; p, m written. Adam: p, g, m, v read; p, m, v written.
  const double arrays = spec.kind == OptimizerKind::sgd ? 5 : 7;
  bench::report_bytes(state, arrays * double(kParams) * sizeof(float));
}
BENCHMARK(BM_OptimizerStep)->ArgName("kind")->Arg(0)->Arg(1)->Arg(2)->UseRealTime();

void BM_GradientNorm(benchmark::State& state) {
  std::vector<float> g(kParams, 0.01f);
  for (auto _ : state) benchmark::DoNotOptimize(gradient_norm(g.data(), kParams));
  bench::report_bytes(state, double(kParams) * sizeof(float));
}
BENCHMARK(BM_GradientNorm)->UseRealTime();

}  // namespace
}  // namespace unet
