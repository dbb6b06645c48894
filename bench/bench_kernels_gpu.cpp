// The CUDA kernels, memory-bound: bytes/s and, with UNET_PEAK_GBPS (an H100
// SXM: 3350), the fraction of HBM bandwidth. Timed with CUDA events around each
// launch (manual time). Without a GPU every benchmark says so and skips.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/counters.h"
#include "engine/device_buffer.h"
#include "kernels/activation.h"
#include "kernels/crop.h"
#include "kernels/dropout.h"
#include "kernels/maxpool.h"
#include "kernels/optimizer.h"

namespace unet {
namespace {

// Runs launch() once per iteration between two events (the callers have
// checked for a GPU); true when the benchmark ran.
template <class F>
bool time_launches(benchmark::State& state, F launch) {
  cudaEvent_t start, stop;
  UNET_CUDA_CHECK(cudaEventCreate(&start));
  UNET_CUDA_CHECK(cudaEventCreate(&stop));
  launch();  // warm-up
  for (auto _ : state) {
    UNET_CUDA_CHECK(cudaEventRecord(start));
    launch();
    UNET_CUDA_CHECK(cudaEventRecord(stop));
    UNET_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    UNET_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(ms / 1e3);
  }
  UNET_CUDA_CHECK(cudaEventDestroy(start));
  UNET_CUDA_CHECK(cudaEventDestroy(stop));
  return true;
}

Shape activations(const benchmark::State& state) {
  return state.range(0) == 3 ? shape3d(2, 32, 128, 128, 64) : shape2d(8, 64, 512, 512);
}

DeviceBuffer<float> filled(int64_t n) {
  DeviceBuffer<float> b(static_cast<size_t>(n));
  if (n) b.zero(nullptr);
  return b;
}

void BM_GpuBiasReluForward(benchmark::State& state) {
  if (cuda_device_count() == 0) return state.SkipWithError("no CUDA GPU on this machine");
  const Shape s = activations(state);
  auto y = filled(s.count()), bias = filled(s.c);
  if (time_launches(state, [&] { bias_act_forward_cuda(Tensor(y.data(), s), bias.data(), {}, nullptr); }))
    bench::report_bytes(state, 2.0 * s.count() * sizeof(float));
}
BENCHMARK(BM_GpuBiasReluForward)->ArgName("dims")->Arg(2)->Arg(3)->UseManualTime();

void BM_GpuMaxPoolForward(benchmark::State& state) {
  if (cuda_device_count() == 0) return state.SkipWithError("no CUDA GPU on this machine");
  const Shape in = activations(state), out = maxpool_output_shape(in);
  auto x = filled(in.count()), y = filled(out.count());
  DeviceBuffer<uint8_t> arg(static_cast<size_t>(out.count()));
  if (time_launches(state, [&] {
        maxpool_forward_cuda(Tensor(x.data(), in), Tensor(y.data(), out), arg.data(), nullptr);
      }))
    bench::report_bytes(state, double(in.count() + out.count()) * sizeof(float) + double(out.count()));
}
BENCHMARK(BM_GpuMaxPoolForward)->ArgName("dims")->Arg(2)->Arg(3)->UseManualTime();

void BM_GpuMaxPoolBackward(benchmark::State& state) {
  if (cuda_device_count() == 0) return state.SkipWithError("no CUDA GPU on this machine");
  const Shape in = activations(state), out = maxpool_output_shape(in);
  auto dy = filled(out.count()), dx = filled(in.count());
  DeviceBuffer<uint8_t> arg(static_cast<size_t>(out.count()));
  arg.zero(nullptr);
  if (time_launches(state, [&] {
        maxpool_backward_cuda(Tensor(dy.data(), out), arg.data(), Tensor(dx.data(), in), GradMode::accumulate,
                              nullptr);
      }))
    bench::report_bytes(state, double(2 * in.count() + out.count()) * sizeof(float) + double(out.count()));
}
BENCHMARK(BM_GpuMaxPoolBackward)->ArgName("dims")->Arg(2)->Arg(3)->UseManualTime();

void BM_GpuCropForward(benchmark::State& state) {
  if (cuda_device_count() == 0) return state.SkipWithError("no CUDA GPU on this machine");
  const Shape big = shape2d(8, 64, 568, 568), small = shape2d(8, 64, 392, 392);  // the paper's first crop
  auto x = filled(big.count()), y = filled(small.count());
  if (time_launches(state, [&] { crop_forward_cuda(Tensor(x.data(), big), Tensor(y.data(), small), nullptr); }))
    bench::report_bytes(state, 2.0 * small.count() * sizeof(float));
}
BENCHMARK(BM_GpuCropForward)->UseManualTime();

void BM_GpuDropoutForward(benchmark::State& state) {
  if (cuda_device_count() == 0) return state.SkipWithError("no CUDA GPU on this machine");
  const Shape s = activations(state);
  auto x = filled(s.count());
  if (time_launches(state, [&] {
        dropout_forward_cuda(Tensor(x.data(), s), Tensor(x.data(), s), {0.5f, 1, 2, 0}, nullptr);
      }))
    bench::report_bytes(state, 2.0 * s.count() * sizeof(float));
}
BENCHMARK(BM_GpuDropoutForward)->ArgName("dims")->Arg(2)->Arg(3)->UseManualTime();

// The paper's U-Net: 31 M parameters; Adam reads p, g, m, v and writes p, m, v.
void BM_GpuAdamStep(benchmark::State& state) {
  if (cuda_device_count() == 0) return state.SkipWithError("no CUDA GPU on this machine");
  const int64_t n = 31030593;
  auto p = filled(n), g = filled(n), m = filled(n), v = filled(n);
  int64_t step = 0;
  if (time_launches(state, [&] {
        optimizer_step_cuda(p.data(), g.data(), m.data(), v.data(), n, {}, 1e-3f, ++step, 1.f, nullptr);
      }))
    bench::report_bytes(state, 7.0 * n * sizeof(float));
}
BENCHMARK(BM_GpuAdamStep)->UseManualTime();

}  // namespace
}  // namespace unet
