// The CUDA kernels: the cuDNN convolution in FLOP/s (with UNET_PEAK_GFLOPS, the
// fraction of peak: an H100 SXM does about 67,000 FP32 and 495,000 dense TF32),
// the memory-bound kernels in bytes/s (with UNET_PEAK_GBPS, an H100 SXM: 3350,
// the fraction of HBM bandwidth). Timed with CUDA events around each launch
// (manual time). Without a GPU every benchmark says so and skips.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <vector>

#include "bench/counters.h"
#include "engine/device/device_buffer.h"
#include "kernels/activation.h"
#include "kernels/conv.h"
#include "kernels/convert.h"
#include "kernels/crop.h"
#include "kernels/dropout.h"
#include "kernels/loss.h"
#include "kernels/maxpool.h"
#include "kernels/norm.h"
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

// Mixed precision: the same kernel on bf16 activations (half the bytes), and
// the conversions at the passes' edges and of the weights.
void BM_GpuBiasReluForwardBf16(benchmark::State& state) {
  if (cuda_device_count() == 0) return state.SkipWithError("no CUDA GPU on this machine");
  const Shape s = activations(state);
  DeviceBuffer<uint16_t> y(static_cast<size_t>(s.count()));
  y.zero(nullptr);
  auto bias = filled(s.c);
  const Tensor t(y.data(), s, s.sample(), DType::bf16);
  if (time_launches(state, [&] { bias_act_forward_cuda(t, bias.data(), {}, nullptr); }))
    bench::report_bytes(state, 2.0 * s.count() * 2);
}
BENCHMARK(BM_GpuBiasReluForwardBf16)->ArgName("dims")->Arg(2)->Arg(3)->UseManualTime();

void BM_GpuConvertToBf16(benchmark::State& state) {
  if (cuda_device_count() == 0) return state.SkipWithError("no CUDA GPU on this machine");
  const Shape s = activations(state);
  auto x = filled(s.count());
  DeviceBuffer<uint16_t> y(static_cast<size_t>(s.count()));
  if (time_launches(state, [&] {
        convert_cuda(x.data(), DType::f32, y.data(), DType::bf16, s.count(), GradMode::overwrite, nullptr);
      }))
    bench::report_bytes(state, double(s.count()) * (4 + 2));
}
BENCHMARK(BM_GpuConvertToBf16)->ArgName("dims")->Arg(2)->Arg(3)->UseManualTime();

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

// 3x3 convolution of the paper's first level (64 -> 64, 512 x 512, batch 8) and a
// 3D level (32 -> 32, 128 x 128 x 64, batch 2); range(1): TF32.
void BM_GpuConv(benchmark::State& state) {
  if (cuda_device_count() == 0) return state.SkipWithError("no CUDA GPU on this machine");
  const bool three_d = state.range(0) == 3, tf32 = state.range(1) == 1, backward = state.range(2) == 1;
  const Shape in = three_d ? shape3d(2, 32, 64, 128, 128) : shape2d(8, 64, 512, 512);
  const ConvSpec spec{3, Padding::same};
  const Shape out = conv_output_shape(in, in.c, spec);
  cudnnHandle_t handle;
  UNET_CUDNN_CHECK(cudnnCreate(&handle));
  {
    ConvCudnn conv(handle, in, in.c, spec, tf32);
    auto x = filled(in.count()), y = filled(out.count()), dy = filled(out.count()), dx = filled(in.count());
    auto w = filled(in.c * in.c * (three_d ? 27 : 9)), dw = filled(in.c * in.c * (three_d ? 27 : 9)), b = filled(in.c);
    DeviceBuffer<uint8_t> ws(conv.workspace_bytes());
    if (time_launches(state, [&] {
          if (backward)
            conv.backward(Tensor(x.data(), in), w.data(), Tensor(dy.data(), out), Tensor(dx.data(), in), dw.data(),
                          b.data(), GradMode::overwrite, ws.data(), nullptr);
          else
            conv.forward(Tensor(x.data(), in), w.data(), b.data(), Tensor(y.data(), out), ws.data(), nullptr);
        }))
      bench::report_flops(state, (backward ? 4.0 : 2.0) * double(conv_macs(in, in.c, spec)));
  }
  UNET_CUDNN_CHECK(cudnnDestroy(handle));
}
BENCHMARK(BM_GpuConv)->ArgNames({"dims", "tf32", "backward"})->ArgsProduct({{2, 3}, {0, 1}, {0, 1}})->UseManualTime();

// Channels-last or not, for the rule (channels-last where benchmarks
// show it wins): the two layers above in bf16 (fp32 accumulation) with the
// tensors in cuDNN's NCHW (the engine's layout) or NHWC (channels-last), each
// pass on the fastest deterministic algorithm cuDNN's timed search finds for
// that layout. range(1): NHWC; range(2): backward (data and filter).
void BM_GpuConvLayoutBf16(benchmark::State& state) {
  if (cuda_device_count() == 0) return state.SkipWithError("no CUDA GPU on this machine");
  const bool three_d = state.range(0) == 3, nhwc = state.range(1) == 1, backward = state.range(2) == 1;
  const Shape in = three_d ? shape3d(2, 32, 64, 128, 128) : shape2d(8, 64, 512, 512);
  const int nd = in.dims;
  const cudnnTensorFormat_t format = nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  std::vector<int> dims{int(in.n), int(in.c)}, filter{int(in.c), int(in.c)}, pad(nd, 1), one(nd, 1);
  if (three_d) dims.push_back(int(in.d));
  dims.push_back(int(in.h)), dims.push_back(int(in.w));
  for (int i = 0; i < nd; ++i) filter.push_back(3);
  cudnnHandle_t handle;
  cudnnTensorDescriptor_t x;  // x, y, dx and dy alike ("same" padding, Ci = Co)
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
  UNET_CUDNN_CHECK(cudnnCreate(&handle));
  UNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
  UNET_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
  UNET_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
  UNET_CUDNN_CHECK(cudnnSetTensorNdDescriptorEx(x, format, CUDNN_DATA_BFLOAT16, nd + 2, dims.data()));
  UNET_CUDNN_CHECK(cudnnSetFilterNdDescriptor(w, CUDNN_DATA_BFLOAT16, format, nd + 2, filter.data()));
  UNET_CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(conv, nd, pad.data(), one.data(), one.data(),
                                                   CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  UNET_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, CUDNN_DEFAULT_MATH));
  {
    const int64_t weights = int64_t(in.c) * in.c * (three_d ? 27 : 9);
    DeviceBuffer<uint16_t> a(static_cast<size_t>(in.count())), b(static_cast<size_t>(in.count())),
        k(static_cast<size_t>(weights)), dk(static_cast<size_t>(weights));
    a.zero(nullptr), b.zero(nullptr), k.zero(nullptr), dk.zero(nullptr);
    // The search's list is fastest first: the first deterministic success.
    auto first = [](const auto* perf, int n) {
      for (int i = 0; i < n; ++i)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].determinism == CUDNN_DETERMINISTIC) return i;
      throw CudaError("cuDNN offers no deterministic algorithm for this layout");
    };
    int n = 0;
    cudnnConvolutionFwdAlgoPerf_t fwd[16];
    cudnnConvolutionBwdDataAlgoPerf_t data[16];
    cudnnConvolutionBwdFilterAlgoPerf_t filt[16];
    UNET_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(handle, x, w, conv, x, 16, &n, fwd));
    const auto f = fwd[first(fwd, n)];
    UNET_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(handle, w, x, conv, x, 16, &n, data));
    const auto d = data[first(data, n)];
    UNET_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(handle, x, x, conv, w, 16, &n, filt));
    const auto g = filt[first(filt, n)];
    const size_t bytes = std::max({f.memory, d.memory, g.memory});
    DeviceBuffer<uint8_t> ws(std::max<size_t>(bytes, 1));
    const float alpha = 1.f, beta = 0.f;
    if (time_launches(state, [&] {
          if (backward) {
            UNET_CUDNN_CHECK(cudnnConvolutionBackwardData(handle, &alpha, w, k.data(), x, b.data(), conv, d.algo,
                                                          ws.data(), bytes, &beta, x, a.data()));
            UNET_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle, &alpha, x, a.data(), x, b.data(), conv, g.algo,
                                                            ws.data(), bytes, &beta, w, dk.data()));
          } else {
            UNET_CUDNN_CHECK(cudnnConvolutionForward(handle, &alpha, x, a.data(), w, k.data(), conv, f.algo, ws.data(),
                                                     bytes, &beta, x, b.data()));
          }
        }))
      bench::report_flops(state, (backward ? 4.0 : 2.0) * double(conv_macs(in, in.c, ConvSpec{3, Padding::same})));
  }
  cudnnDestroyConvolutionDescriptor(conv);
  cudnnDestroyFilterDescriptor(w);
  cudnnDestroyTensorDescriptor(x);
  cudnnDestroy(handle);
}
BENCHMARK(BM_GpuConvLayoutBf16)
    ->ArgNames({"dims", "nhwc", "backward"})
    ->ArgsProduct({{2, 3}, {0, 1}, {0, 1}})
    ->UseManualTime();

void BM_GpuBatchNormForward(benchmark::State& state) {
  if (cuda_device_count() == 0) return state.SkipWithError("no CUDA GPU on this machine");
  const Shape s = activations(state);
  auto x = filled(s.count()), y = filled(s.count()), gamma = filled(s.c), beta = filled(s.c), mean = filled(s.c),
       invstd = filled(s.c), rm = filled(s.c), rv = filled(s.c);
  DeviceBuffer<double> ws(static_cast<size_t>(3 * s.c));
  if (time_launches(state, [&] {
        norm_forward_train_cuda(Tensor(x.data(), s), Tensor(y.data(), s), gamma.data(), beta.data(), mean.data(),
                                invstd.data(), rm.data(), rv.data(), {}, ws.data(), nullptr);
      }))
    bench::report_bytes(state, 4.0 * s.count() * sizeof(float));  // x read twice for the moments, once to apply; y written
}
BENCHMARK(BM_GpuBatchNormForward)->ArgName("dims")->Arg(2)->Arg(3)->UseManualTime();

// Sigmoid + Dice + CE: pass 1 reads logits and labels and writes the probabilities; pass 2 reads
// labels and probabilities and writes the gradient: 24 bytes a voxel.
void BM_GpuLossDiceCe(benchmark::State& state) {
  if (cuda_device_count() == 0) return state.SkipWithError("no CUDA GPU on this machine");
  const Shape s = state.range(0) == 3 ? shape3d(2, 1, 128, 128, 64) : shape2d(8, 1, 512, 512);
  auto z = filled(s.count()), dz = filled(s.count());
  DeviceBuffer<int32_t> labels(static_cast<size_t>(s.count()));
  labels.zero(nullptr);
  DeviceBuffer<double> ws(static_cast<size_t>(loss_workspace_doubles(s)));
  const LossSpec spec = make_loss(LossKind::dice_ce, Head::sigmoid);
  if (time_launches(state, [&] {
        loss_forward_backward_cuda(Tensor(z.data(), s), labels.data(), Tensor(dz.data(), s), spec, ws.data(), nullptr);
      }))
    bench::report_bytes(state, double(s.count()) * (3 * sizeof(float) + 2 * sizeof(int32_t) + sizeof(float)));
}
BENCHMARK(BM_GpuLossDiceCe)->ArgName("dims")->Arg(2)->Arg(3)->UseManualTime();

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
