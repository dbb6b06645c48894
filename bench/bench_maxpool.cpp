// Max pooling forward and backward, memory-bound: bytes/s.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/counters.h"
#include "kernels/maxpool.h"

namespace unet {
namespace {

Shape input(const benchmark::State& state) {
  return state.range(0) == 3 ? shape3d(1, 32, 64, 64, 64) : shape2d(4, 32, 256, 256);
}

void BM_MaxPoolForward(benchmark::State& state) {
  const Shape in = input(state), out = maxpool_output_shape(in);
  std::vector<float> x(in.count(), 1.f), y(out.count());
  std::vector<uint8_t> arg(out.count());
  for (auto _ : state) {
    maxpool_forward(Tensor(x.data(), in), Tensor(y.data(), out), arg.data());
    benchmark::DoNotOptimize(y.data());
  }
  bench::report_bytes(state, double(in.count() + out.count()) * sizeof(float) + double(out.count()));
}
BENCHMARK(BM_MaxPoolForward)->ArgName("dims")->Arg(2)->Arg(3)->UseRealTime();

void BM_MaxPoolBackward(benchmark::State& state) {
  const Shape in = input(state), out = maxpool_output_shape(in);
  std::vector<float> dy(out.count(), 1.f), dx(in.count());
  std::vector<uint8_t> arg(out.count(), 0);
  for (auto _ : state) {
    maxpool_backward(Tensor(dy.data(), out), arg.data(), Tensor(dx.data(), in), GradMode::overwrite);
    benchmark::DoNotOptimize(dx.data());
  }
  bench::report_bytes(state, double(in.count() + out.count()) * sizeof(float) + double(out.count()));
}
BENCHMARK(BM_MaxPoolBackward)->ArgName("dims")->Arg(2)->Arg(3)->UseRealTime();

}  // namespace
}  // namespace unet
