// Convolution forward and backward (data + filter + bias) on the CPU, in FLOP/s:
// the im2col + OpenBLAS reference (BM_Conv*) and oneDNN, the CPU backend's
// (BM_ConvDnnl*, in fp32 and bf16; its reorders in and out counted in its time).
// The README's figures are those at 32 -> 32, 256x256, and the U-Net layers'.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/counters.h"
#include "kernels/conv.h"
#include "kernels/conv_dnnl.h"

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

// {dims, channels, size, kernel, bf16}
void BM_ConvDnnlForward(benchmark::State& state) {
  const auto [in, co, spec] = layer(state);
  const DType type = state.range(4) ? DType::bf16 : DType::f32;
  if (type == DType::bf16 && !cpu_has_bf16_convolutions()) return state.SkipWithError("no bf16 convolutions on this CPU");
  const ConvDnnl conv(in, co, spec, {}, type);
  const Shape out = conv_output_shape(in, co, spec);
  std::vector<float> x(in.count(), 0.5f), w(co * in.c * (in.dims == 3 ? spec.kernel : 1) * spec.kernel * spec.kernel, 0.01f),
      b(co, 0.f), y(out.count()), ws(conv.workspace_bytes() / sizeof(float) + 1);
  for (auto _ : state) {
    conv.forward(Tensor(x.data(), in), w.data(), b.data(), Tensor(y.data(), out), ws.data());
    benchmark::DoNotOptimize(y.data());
  }
  bench::report_flops(state, 2.0 * double(conv_macs(in, co, spec)));
  state.SetLabel(conv.kernels()[0]);
}

void BM_ConvDnnlBackward(benchmark::State& state) {
  const auto [in, co, spec] = layer(state);
  const DType type = state.range(4) ? DType::bf16 : DType::f32;
  if (type == DType::bf16 && !cpu_has_bf16_convolutions()) return state.SkipWithError("no bf16 convolutions on this CPU");
  const ConvDnnl conv(in, co, spec, {}, type);
  const Shape out = conv_output_shape(in, co, spec);
  std::vector<float> x(in.count(), 0.5f), w(co * in.c * (in.dims == 3 ? spec.kernel : 1) * spec.kernel * spec.kernel, 0.01f),
      dy(out.count(), 0.1f), dx(in.count()), dw(w.size()), db(co), ws(conv.workspace_bytes() / sizeof(float) + 1);
  for (auto _ : state) {
    conv.backward(Tensor(x.data(), in), w.data(), Tensor(dy.data(), out), Tensor(dx.data(), in), dw.data(), db.data(),
                  GradMode::overwrite, ws.data());
    benchmark::DoNotOptimize(dx.data());
  }
  bench::report_flops(state, 4.0 * double(conv_macs(in, co, spec)));
  state.SetLabel(conv.kernels()[1] + ", " + conv.kernels()[2]);
}

void layers(benchmark::internal::Benchmark* b) {
  b->ArgNames({"dims", "ch", "size", "k"});
  b->Args({2, 32, 256, 3});   // the README's reference layer
  b->Args({2, 64, 128, 3});
  b->Args({2, 32, 256, 1});   // 1x1 head-like
  b->Args({3, 16, 32, 3});
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}
void dnnl_layers(benchmark::internal::Benchmark* b) {
  b->ArgNames({"dims", "ch", "size", "k", "bf16"});
  for (int bf16 : {0, 1}) {
    b->Args({2, 32, 256, 3, bf16});
    b->Args({2, 64, 128, 3, bf16});
    b->Args({2, 32, 256, 1, bf16});
    b->Args({3, 16, 32, 3, bf16});
  }
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK(BM_ConvForward)->Apply(layers);
BENCHMARK(BM_ConvBackward)->Apply(layers);
BENCHMARK(BM_ConvDnnlForward)->Apply(dnnl_layers);
BENCHMARK(BM_ConvDnnlBackward)->Apply(dnnl_layers);

}  // namespace
}  // namespace unet
