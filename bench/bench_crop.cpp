// Centre crop into a concatenation slice, and its backward: bytes/s.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/counters.h"
#include "kernels/crop.h"

namespace unet {
namespace {

// A valid U-Net's first skip: 64 channels, 568 -> 392 (Ronneberger et al.'s sizes).
void BM_CropForward(benchmark::State& state) {
  const Shape big = shape2d(1, 64, 568, 568), small = shape2d(1, 64, 392, 392), cat = shape2d(1, 128, 392, 392);
  std::vector<float> x(big.count(), 1.f), buf(cat.count());
  const Tensor skip = Tensor(buf.data(), cat).channels(0, 64);
  for (auto _ : state) {
    crop_forward(Tensor(x.data(), big), skip);
    benchmark::DoNotOptimize(buf.data());
  }
  bench::report_bytes(state, 2.0 * double(small.count()) * sizeof(float));
}
BENCHMARK(BM_CropForward)->UseRealTime();

void BM_CropBackward(benchmark::State& state) {
  const Shape big = shape2d(1, 64, 568, 568), small = shape2d(1, 64, 392, 392);
  std::vector<float> dy(small.count(), 1.f), dx(big.count());
  for (auto _ : state) {
    crop_backward(Tensor(dy.data(), small), Tensor(dx.data(), big), GradMode::overwrite);
    benchmark::DoNotOptimize(dx.data());
  }
  bench::report_bytes(state, double(big.count() + 2 * small.count()) * sizeof(float));
}
BENCHMARK(BM_CropBackward)->UseRealTime();

}  // namespace
}  // namespace unet
