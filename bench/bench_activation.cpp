// Bias + ReLU forward and backward: memory-bound, reported in bytes/s.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/counters.h"
#include "kernels/activation.h"

namespace unet {
namespace {

void BM_BiasReluForward(benchmark::State& state) {
  const Shape s = shape2d(4, 32, state.range(0), state.range(0));
  std::vector<float> y(s.count(), 0.5f), bias(s.c, 0.1f);
  for (auto _ : state) {
    bias_act_forward(Tensor(y.data(), s), bias.data(), {Activation::relu, 0.f});
    benchmark::DoNotOptimize(y.data());
  }
  bench::report_bytes(state, double(s.count()) * 2 * sizeof(float));  // read + write
}
BENCHMARK(BM_BiasReluForward)->Arg(128)->Arg(256)->UseRealTime();

void BM_BiasReluBackward(benchmark::State& state) {
  const Shape s = shape2d(4, 32, state.range(0), state.range(0));
  std::vector<float> y(s.count(), 0.5f), dy(s.count(), 1.f), dbias(s.c, 0.f);
  for (auto _ : state) {
    bias_act_backward(Tensor(y.data(), s), Tensor(dy.data(), s), dbias.data(), {Activation::relu, 0.f});
    benchmark::DoNotOptimize(dy.data());
  }
  bench::report_bytes(state, double(s.count()) * 4 * sizeof(float));  // y, dy twice, bias pass
}
BENCHMARK(BM_BiasReluBackward)->Arg(128)->Arg(256)->UseRealTime();

}  // namespace
}  // namespace unet
