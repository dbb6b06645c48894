// Up-convolution forward and backward: FLOP/s.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/counters.h"
#include "kernels/upconv.h"

namespace unet {
namespace {

// The up-convolution of a 2D U-Net's second level (64 -> 32 channels, 128 -> 256)
// and of a 3D U-Net's (64 -> 32, 32^3 -> 64^3; kd 1: thick slices, 2x2x1).
PoolWindow window(const benchmark::State& state) { return {int(state.range(1)), 2, 2}; }

Shape input(const benchmark::State& state) {
  return state.range(0) == 3 ? shape3d(1, 64, 32, 32, 32) : shape2d(1, 64, 128, 128);
}

void BM_UpconvForward(benchmark::State& state) {
  const Shape in = input(state), out = upconv_output_shape(in, 32, window(state));
  std::vector<float> x(in.count(), 0.5f), w(upconv_weight_count(in, 32, window(state)), 0.01f), b(32), y(out.count()),
      ws(upconv_workspace_floats(in, 32, window(state)));
  for (auto _ : state) {
    upconv_forward(Tensor(x.data(), in), w.data(), b.data(), Tensor(y.data(), out), ws.data(), window(state));
    benchmark::DoNotOptimize(y.data());
  }
  bench::report_flops(state, 2.0 * double(upconv_macs(in, 32, window(state))));
}
BENCHMARK(BM_UpconvForward)->ArgNames({"dims", "kd"})->Args({2, 1})->Args({3, 2})->Args({3, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void BM_UpconvBackward(benchmark::State& state) {
  const Shape in = input(state), out = upconv_output_shape(in, 32, window(state));
  std::vector<float> x(in.count(), 0.5f), w(upconv_weight_count(in, 32, window(state)), 0.01f), dy(out.count(), 0.1f),
      dx(in.count()), dw(w.size()), db(32), ws(upconv_workspace_floats(in, 32, window(state)));
  for (auto _ : state) {
    upconv_backward(Tensor(x.data(), in), w.data(), Tensor(dy.data(), out), Tensor(dx.data(), in), dw.data(),
                    db.data(), GradMode::overwrite, ws.data(), window(state));
    benchmark::DoNotOptimize(dx.data());
  }
  bench::report_flops(state, 4.0 * double(upconv_macs(in, 32, window(state))));
}
BENCHMARK(BM_UpconvBackward)->ArgNames({"dims", "kd"})->Args({2, 1})->Args({3, 2})->Args({3, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace unet
