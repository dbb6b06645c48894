// Up-convolution forward and backward: FLOP/s.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/counters.h"
#include "kernels/upconv.h"

namespace unet {
namespace {

// The up-convolution of a 2D U-Net's second level (64 -> 32 channels, 128 -> 256)
// and of a 3D U-Net's (64 -> 32, 32^3 -> 64^3).
Shape input(const benchmark::State& state) {
  return state.range(0) == 3 ? shape3d(1, 64, 32, 32, 32) : shape2d(1, 64, 128, 128);
}

void BM_UpconvForward(benchmark::State& state) {
  const Shape in = input(state), out = upconv_output_shape(in, 32);
  std::vector<float> x(in.count(), 0.5f), w(in.c * 32 * (in.dims == 3 ? 8 : 4), 0.01f), b(32), y(out.count()),
      ws(upconv_workspace_floats(in, 32));
  for (auto _ : state) {
    upconv_forward(Tensor(x.data(), in), w.data(), b.data(), Tensor(y.data(), out), ws.data());
    benchmark::DoNotOptimize(y.data());
  }
  bench::report_flops(state, 2.0 * double(upconv_macs(in, 32)));
}
BENCHMARK(BM_UpconvForward)->ArgName("dims")->Arg(2)->Arg(3)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_UpconvBackward(benchmark::State& state) {
  const Shape in = input(state), out = upconv_output_shape(in, 32);
  std::vector<float> x(in.count(), 0.5f), w(in.c * 32 * (in.dims == 3 ? 8 : 4), 0.01f), dy(out.count(), 0.1f),
      dx(in.count()), dw(w.size()), db(32), ws(upconv_workspace_floats(in, 32));
  for (auto _ : state) {
    upconv_backward(Tensor(x.data(), in), w.data(), Tensor(dy.data(), out), Tensor(dx.data(), in), dw.data(),
                    db.data(), GradMode::overwrite, ws.data());
    benchmark::DoNotOptimize(dx.data());
  }
  bench::report_flops(state, 4.0 * double(upconv_macs(in, 32)));
}
BENCHMARK(BM_UpconvBackward)->ArgName("dims")->Arg(2)->Arg(3)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace unet
