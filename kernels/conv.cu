// Convolution through cuDNN (conv.h's ConvCudnn): Nd descriptors for 2D and 3D,
// the tensors' own batch strides (a channel slice of a concatenation buffer is
// described as it lies), deterministic algorithms chosen once per shape and strides.
#include <cudnn.h>

#include <cstdint>
#include <map>
#include <stdexcept>
#include <mutex>
#include <string>
#include <vector>

#include "engine/cuda_check.h"
#include "kernels/activation.h"
#include "kernels/conv.h"
#include "kernels/cuda_launch.h"

namespace unet {
namespace {

struct Algos {
  cudnnConvolutionFwdAlgo_t fwd;
  cudnnConvolutionBwdDataAlgo_t bwd_data;
  cudnnConvolutionBwdFilterAlgo_t bwd_filter;
};

// Process-wide: a shape met again (the same layer in the next plan, or its twin
// at another level) reuses the choice, which a timed search makes expensive.
std::mutex g_cache_mutex;
std::map<std::string, Algos> g_cache;

cudnnDataType_t cudnn_type(DType t) {
  return t == DType::f32 ? CUDNN_DATA_FLOAT : t == DType::bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
}

// N, C, [D,] H, W with the tensor's batch stride.
void describe(cudnnTensorDescriptor_t d, const Shape& s, int64_t batch_stride, DType type) {
  // The descriptors hold 32-bit sizes and strides.
  if (s.n * batch_stride > INT32_MAX)
    throw std::invalid_argument("cuDNN: tensor " + s.str() + " has more than 2^31 elements; use a smaller batch");
  const int nd = s.dims + 2;
  std::vector<int> dims{int(s.n), int(s.c)}, strides{int(batch_stride), int(s.spatial())};
  if (s.dims == 3) dims.push_back(int(s.d)), strides.push_back(int(s.h * s.w));
  dims.push_back(int(s.h)), strides.push_back(int(s.w));
  dims.push_back(int(s.w)), strides.push_back(1);
  UNET_CUDNN_CHECK(cudnnSetTensorNdDescriptor(d, cudnn_type(type), nd, dims.data(), strides.data()));
}

// The first deterministic algorithm (cuDNN lists the fastest first) whose
// workspace is within the budget, else the deterministic one that needs least.
constexpr size_t kWorkspaceBudget = size_t(1) << 30;

template <class Perf>
int pick(const Perf* perf, int count, const char* what) {
  int smallest = -1;
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].determinism != CUDNN_DETERMINISTIC) continue;
    if (perf[i].memory <= kWorkspaceBudget) return i;
    if (smallest < 0 || perf[i].memory < perf[smallest].memory) smallest = i;
  }
  if (smallest >= 0) return smallest;
  throw CudaError(std::string("cuDNN offers no deterministic ") + what + " algorithm for this shape");
}

// One pass's algorithm: cuDNN's timed search or its heuristics fill the same
// list of candidates, fastest first; pick() takes from it.
constexpr int kCandidates = 16;

template <class Perf, class Search, class Heuristics>
auto choose(bool search, const Search& find, const Heuristics& heuristics, const char* what) {
  Perf perf[kCandidates];
  int n = 0;
  search ? find(perf, &n) : heuristics(perf, &n);
  return perf[pick(perf, n, what)].algo;
}

}  // namespace

struct ConvCudnn::Impl {
  cudnnHandle_t handle;
  Shape in, out;
  ConvSpec spec;
  DType type;  // of x, y, w and their gradients
  cudnnTensorDescriptor_t x, y, bias;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
  cudnnActivationDescriptor_t relu;
  Algos algos;
  size_t workspace = 0;
  mutable bool fuses = true;  // until cuDNN declines the fused call for this layer
};

ConvCudnn::ConvCudnn(cudnnContext* handle, const Shape& in, int64_t out_channels, const ConvSpec& spec, bool tf32,
                     bool search, ConvStrides strides, DType type)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.handle = handle;
  m.in = in;
  m.out = conv_output_shape(in, out_channels, spec);
  m.spec = spec;
  m.type = type;
  UNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&m.x));
  UNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&m.y));
  UNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&m.bias));
  UNET_CUDNN_CHECK(cudnnCreateFilterDescriptor(&m.w));
  UNET_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&m.conv));
  UNET_CUDNN_CHECK(cudnnCreateActivationDescriptor(&m.relu));
  UNET_CUDNN_CHECK(cudnnSetActivationDescriptor(m.relu, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
  // The algorithms are chosen for the strides the layer's tensors will have:
  // a channel slice's may not suit every algorithm.
  const int64_t xs = strides.x ? strides.x : in.sample(), ys = strides.y ? strides.y : m.out.sample(),
                dys = strides.dy ? strides.dy : m.out.sample();
  Shape b = m.out;
  b.n = 1, b.d = 1, b.h = 1, b.w = 1;
  describe(m.bias, b, b.sample(), DType::f32);
  const int nd = in.dims;
  std::vector<int> filter{int(out_channels), int(in.c)}, pad(nd, spec.padding == Padding::same ? spec.kernel / 2 : 0),
      one(nd, 1);
  for (int i = 0; i < nd; ++i) filter.push_back(spec.kernel);
  UNET_CUDNN_CHECK(cudnnSetFilterNdDescriptor(m.w, cudnn_type(type), CUDNN_TENSOR_NCHW, nd + 2, filter.data()));
  UNET_CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(m.conv, nd, pad.data(), one.data(), one.data(),
                                                   CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  // 16-bit operands accumulate in fp32 (the convolution's compute type above)
  // on tensor cores; fp32 ones use TF32 tensor cores only when allowed.
  UNET_CUDNN_CHECK(
      cudnnSetConvolutionMathType(m.conv, tf32 || type != DType::f32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));

  const std::string key = conv_key(in, out_channels, spec, strides) + " " +
                          (type != DType::f32 ? dtype_name(type) : tf32 ? "tf32" : "fp32");
  // Each pass is chosen and sized with the descriptors it will run with:
  // forward x -> y; the filter gradient x, dy; the data gradient dy -> packed dx.
  auto forward_view = [&] { describe(m.x, in, xs, type), describe(m.y, m.out, ys, type); };
  auto filter_view = [&] { describe(m.x, in, xs, type), describe(m.y, m.out, dys, type); };
  auto data_view = [&] { describe(m.x, in, in.sample(), type), describe(m.y, m.out, dys, type); };
  std::lock_guard<std::mutex> lock(g_cache_mutex);
  auto it = g_cache.find(key);
  const bool cached = it != g_cache.end();
  if (cached) m.algos = it->second;
  size_t a = 0, b2 = 0, c = 0;
  forward_view();
  if (!cached)
    m.algos.fwd = choose<cudnnConvolutionFwdAlgoPerf_t>(
        search,
        [&](auto* p, int* n) {
          UNET_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(handle, m.x, m.w, m.conv, m.y, kCandidates, n, p));
        },
        [&](auto* p, int* n) {
          UNET_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, m.x, m.w, m.conv, m.y, kCandidates, n, p));
        },
        "forward");
  UNET_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(handle, m.x, m.w, m.conv, m.y, m.algos.fwd, &a));
  filter_view();
  if (!cached)
    m.algos.bwd_filter = choose<cudnnConvolutionBwdFilterAlgoPerf_t>(
        search,
        [&](auto* p, int* n) {
          UNET_CUDNN_CHECK(
              cudnnFindConvolutionBackwardFilterAlgorithm(handle, m.x, m.y, m.conv, m.w, kCandidates, n, p));
        },
        [&](auto* p, int* n) {
          UNET_CUDNN_CHECK(
              cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, m.x, m.y, m.conv, m.w, kCandidates, n, p));
        },
        "backward-filter");
  UNET_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, m.x, m.y, m.conv, m.w, m.algos.bwd_filter, &c));
  data_view();
  if (!cached) {
    m.algos.bwd_data = choose<cudnnConvolutionBwdDataAlgoPerf_t>(
        search,
        [&](auto* p, int* n) {
          UNET_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(handle, m.w, m.y, m.conv, m.x, kCandidates, n, p));
        },
        [&](auto* p, int* n) {
          UNET_CUDNN_CHECK(
              cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, m.w, m.y, m.conv, m.x, kCandidates, n, p));
        },
        "backward-data");
    g_cache[key] = m.algos;
  }
  UNET_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(handle, m.w, m.y, m.conv, m.x, m.algos.bwd_data, &b2));
  m.workspace = std::max(a, std::max(b2, c));
}

ConvCudnn::~ConvCudnn() {
  Impl& m = *impl_;
  cudnnDestroyTensorDescriptor(m.x);
  cudnnDestroyTensorDescriptor(m.y);
  cudnnDestroyTensorDescriptor(m.bias);
  cudnnDestroyFilterDescriptor(m.w);
  cudnnDestroyConvolutionDescriptor(m.conv);
  cudnnDestroyActivationDescriptor(m.relu);
}

size_t ConvCudnn::workspace_bytes() const { return impl_->workspace; }

void ConvCudnn::forward(const Tensor& x, const void* w, const float* bias, const Tensor& y, void* workspace,
                        Stream stream) const {
  const Impl& m = *impl_;
  expect_shape("ConvCudnn::forward", "x", x.shape, m.in);
  expect_shape("ConvCudnn::forward", "y", y.shape, m.out);
  expect_dtype("ConvCudnn::forward", "x", x, m.type);
  expect_dtype("ConvCudnn::forward", "y", y, m.type);
  UNET_CUDNN_CHECK(cudnnSetStream(m.handle, stream));
  describe(m.x, x.shape, x.batch_stride, m.type);
  describe(m.y, y.shape, y.batch_stride, m.type);
  const float one = 1.f, zero = 0.f;
  UNET_CUDNN_CHECK(cudnnConvolutionForward(m.handle, &one, m.x, x.data, m.w, w, m.conv, m.algos.fwd, workspace,
                                           m.workspace, &zero, m.y, y.data));
  if (!bias) return;
  if (m.type == DType::f32)
    UNET_CUDNN_CHECK(cudnnAddTensor(m.handle, &one, m.bias, bias, &one, m.y, y.data));
  else  // the fp32 bias onto 16-bit outputs: our kernel, which adds before rounding
    bias_act_forward_cuda(y, bias, {Activation::identity}, stream);
}

bool ConvCudnn::forward_bias_relu(const Tensor& x, const void* w, const float* bias, const Tensor& y,
                                  void* workspace, Stream stream) const {
  const Impl& m = *impl_;
  if (!m.fuses || m.type != DType::f32) return false;
  expect_shape("ConvCudnn::forward_bias_relu", "x", x.shape, m.in);
  expect_shape("ConvCudnn::forward_bias_relu", "y", y.shape, m.out);
  UNET_CUDNN_CHECK(cudnnSetStream(m.handle, stream));
  describe(m.x, x.shape, x.batch_stride, m.type);
  describe(m.y, y.shape, y.batch_stride, m.type);
  // alpha2 = 0: the z input (here y itself) does not contribute.
  const float one = 1.f, zero = 0.f;
  const cudnnStatus_t status =
      cudnnConvolutionBiasActivationForward(m.handle, &one, m.x, x.data, m.w, w, m.conv, m.algos.fwd, workspace,
                                            m.workspace, &zero, m.y, y.data, m.bias, bias, m.relu, m.y, y.data);
  if (status == CUDNN_STATUS_NOT_SUPPORTED) {  // this layout or algorithm: unfused from now on
    m.fuses = false;
    return false;
  }
  UNET_CUDNN_CHECK(status);
  return true;
}

void ConvCudnn::backward(const Tensor& x, const void* w, const Tensor& dy, const Tensor& dx, void* dw, float* dbias,
                         GradMode mode, void* workspace, Stream stream) const {
  const Impl& m = *impl_;
  expect_shape("ConvCudnn::backward", "x", x.shape, m.in);
  expect_shape("ConvCudnn::backward", "dy", dy.shape, m.out);
  expect_dtype("ConvCudnn::backward", "x", x, m.type);
  expect_dtype("ConvCudnn::backward", "dy", dy, m.type);
  UNET_CUDNN_CHECK(cudnnSetStream(m.handle, stream));
  const float one = 1.f, zero = 0.f;
  describe(m.x, x.shape, x.batch_stride, m.type);
  describe(m.y, dy.shape, dy.batch_stride, m.type);
  // fp32 parameter gradients accumulate (beta = 1), as on the CPU; a 16-bit dw
  // is overwritten (the caller adds it into its fp32 gradient).
  UNET_CUDNN_CHECK(cudnnConvolutionBackwardFilter(m.handle, &one, m.x, x.data, m.y, dy.data, m.conv,
                                                  m.algos.bwd_filter, workspace, m.workspace,
                                                  m.type == DType::f32 ? &one : &zero, m.w, dw));
  if (dbias && m.type == DType::f32)
    UNET_CUDNN_CHECK(cudnnConvolutionBackwardBias(m.handle, &one, m.y, dy.data, &one, m.bias, dbias));
  else if (dbias) {  // 16-bit dy into the fp32 dbias: our channel sums, in fp32
    launch_channel_sums(dy, dbias, stream);
    UNET_CUDA_CHECK_LAUNCH();
  }
  if (dx.data) {
    expect_shape("ConvCudnn::backward", "dx", dx.shape, m.in);
    expect_dtype("ConvCudnn::backward", "dx", dx, m.type);
    describe(m.x, dx.shape, dx.batch_stride, m.type);
    UNET_CUDNN_CHECK(cudnnConvolutionBackwardData(m.handle, &one, m.w, w, m.y, dy.data, m.conv, m.algos.bwd_data,
                                                  workspace, m.workspace,
                                                  mode == GradMode::accumulate ? &one : &zero, m.x, dx.data));
  }
}

}  // namespace unet
