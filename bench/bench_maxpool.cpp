// Max pooling forward and backward, memory-bound: bytes/s.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/counters.h"
#include "kernels/maxpool.h"

namespace unet {
namespace {

// kd: the window's depth, 1 for thick slices pooled 2x2x1.
PoolWindow window(const benchmark::State& state) { return {int(state.range(1)), 2, 2}; }

Shape input(const benchmark::State& state) {
  return state.range(0) == 3 ? shape3d(1, 32, 64, 64, 64) : shape2d(4, 32, 256, 256);
}

void BM_MaxPoolForward(benchmark::State& state) {
  const Shape in = input(state), out = maxpool_output_shape(in, window(state));
  std::vector<float> x(in.count(), 1.f), y(out.count());
  std::vector<uint8_t> arg(out.count());
  for (auto _ : state) {
    maxpool_forward(Tensor(x.data(), in), Tensor(y.data(), out), arg.data(), window(state));
    benchmark::DoNotOptimize(y.data());
  }
  bench::report_bytes(state, double(in.count() + out.count()) * sizeof(float) + double(out.count()));
}
BENCHMARK(BM_MaxPoolForward)->ArgNames({"dims", "kd"})->Args({2, 1})->Args({3, 2})->Args({3, 1})
    ->UseRealTime();

void BM_MaxPoolBackward(benchmark::State& state) {
  const Shape in = input(state), out = maxpool_output_shape(in, window(state));
  std::vector<float> dy(out.count(), 1.f), dx(in.count());
  std::vector<uint8_t> arg(out.count(), 0);
  for (auto _ : state) {
    maxpool_backward(Tensor(dy.data(), out), arg.data(), Tensor(dx.data(), in), GradMode::overwrite, window(state));
    benchmark::DoNotOptimize(dx.data());
  }
  bench::report_bytes(state, double(in.count() + out.count()) * sizeof(float) + double(out.count()));
}
BENCHMARK(BM_MaxPoolBackward)->ArgNames({"dims", "kd"})->Args({2, 1})->Args({3, 2})->Args({3, 1})
    ->UseRealTime();

}  // namespace
}  // namespace unet
