// Batch and instance norm, training forward and backward: bytes/s (two passes
// over x for the statistics count as reads).
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/counters.h"
#include "kernels/norm.h"

namespace unet {
namespace {

Shape bench_shape(int64_t dims) { return dims == 2 ? shape2d(4, 32, 256, 256) : shape3d(2, 16, 64, 64, 64); }

void BM_NormForward(benchmark::State& state) {
  const Shape s = bench_shape(state.range(0));
  const NormSpec spec{state.range(1) ? NormKind::instance : NormKind::batch, 1e-5f, 0.1f};
  const int64_t groups = norm_groups(spec.kind, s);
  std::vector<float> x(s.count(), 1.f), y(x.size()), gamma(s.c, 1.f), beta(s.c, 0.f), mean(groups), invstd(groups),
      rm(s.c, 0.f), rv(s.c, 1.f);
  for (int64_t i = 0; i < s.count(); ++i) x[i] = float(i % 97);
  for (auto _ : state) {
    norm_forward_train(Tensor(x.data(), s), Tensor(y.data(), s), gamma.data(), beta.data(), mean.data(), invstd.data(),
                       rm.data(), rv.data(), spec);
    benchmark::DoNotOptimize(y.data());
  }
  bench::report_bytes(state, 4.0 * double(s.count()) * sizeof(float));  // x three times, y once
}
BENCHMARK(BM_NormForward)->ArgNames({"dims", "instance"})->ArgsProduct({{2, 3}, {0, 1}})->UseRealTime();

void BM_NormBackward(benchmark::State& state) {
  const Shape s = bench_shape(state.range(0));
  const NormSpec spec{state.range(1) ? NormKind::instance : NormKind::batch, 1e-5f, 0.1f};
  const int64_t groups = norm_groups(spec.kind, s);
  std::vector<float> x(s.count(), 1.f), dy(x.size(), 0.5f), dx(x.size()), gamma(s.c, 1.f), dgamma(s.c), dbeta(s.c),
      mean(groups, 0.f), invstd(groups, 1.f);
  for (auto _ : state) {
    norm_backward(Tensor(x.data(), s), Tensor(dy.data(), s), Tensor(dx.data(), s), gamma.data(), mean.data(),
                  invstd.data(), dgamma.data(), dbeta.data(), spec);
    benchmark::DoNotOptimize(dx.data());
  }
  bench::report_bytes(state, 6.0 * double(s.count()) * sizeof(float));  // dy 3x, x 2x, dx once
}
BENCHMARK(BM_NormBackward)->ArgNames({"dims", "instance"})->ArgsProduct({{2, 3}, {0, 1}})->UseRealTime();

}  // namespace
}  // namespace unet
