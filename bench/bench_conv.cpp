// Convolution forward and backward (data + filter + bias) on the CPU, in FLOP/s.
// The README's figure is BM_ConvForward/BM_ConvBackward at 32 -> 32, 256x256.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/counters.h"
#include "kernels/conv.h"

namespace unet {
namespace {

struct Layer {
  Shape in;
  int64_t co;
  ConvSpec spec;
};

// Arguments: {dims, channels in = out, size, kernel}
Layer layer(const benchmark::State& state) {
  const int64_t c = state.range(1), s = state.range(2);
  const Shape in = state.range(0) == 3 ? shape3d(1, c, s, s, s) : shape2d(1, c, s, s);
  return {in, c, {static_cast<int>(state.range(3)), Padding::same}};
}

void BM_ConvForward(benchmark::State& state) {
  const auto [in, co, spec] = layer(state);
  const Shape out = conv_output_shape(in, co, spec);
  std::vector<float> x(in.count(), 0.5f), w(co * in.c * (in.dims == 3 ? spec.kernel : 1) * spec.kernel * spec.kernel, 0.01f),
      b(co, 0.f), y(out.count()), ws(conv_workspace_floats(in, co, spec));
  for (auto _ : state) {
    conv_forward(Tensor(x.data(), in), w.data(), b.data(), Tensor(y.data(), out), spec, ws.data());
    benchmark::DoNotOptimize(y.data());
  }
  bench::report_flops(state, 2.0 * double(conv_macs(in, co, spec)));
}

void BM_ConvBackward(benchmark::State& state) {
  const auto [in, co, spec] = layer(state);
  const Shape out = conv_output_shape(in, co, spec);
  std::vector<float> x(in.count(), 0.5f), w(co * in.c * (in.dims == 3 ? spec.kernel : 1) * spec.kernel * spec.kernel, 0.01f),
      dy(out.count(), 0.1f), dx(in.count()), dw(w.size()), db(co), ws(conv_workspace_floats(in, co, spec));
  for (auto _ : state) {
    conv_backward(Tensor(x.data(), in), w.data(), Tensor(dy.data(), out), Tensor(dx.data(), in), dw.data(), db.data(),
                  spec, GradMode::overwrite, ws.data());
    benchmark::DoNotOptimize(dx.data());
  }
  bench::report_flops(state, 4.0 * double(conv_macs(in, co, spec)));  // data + filter gradients
}

void layers(benchmark::internal::Benchmark* b) {
  b->ArgNames({"dims", "ch", "size", "k"});
  b->Args({2, 32, 256, 3});   // the README's reference layer
  b->Args({2, 64, 128, 3});
  b->Args({2, 32, 256, 1});   // 1x1 head-like
  b->Args({3, 16, 32, 3});
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_ConvForward)->Apply(layers);
BENCHMARK(BM_ConvBackward)->Apply(layers);

}  // namespace
}  // namespace unet
