// Convolution through cuDNN (conv.h's ConvCudnn): Nd descriptors for 2D and 3D,
// the tensors' own batch strides (a channel slice of a concatenation buffer is
// described as it lies), one convolution descriptor per pass (each carries its
// algorithm's math type), and per pass cuDNN's whole ranking of algorithms,
// validated when the layer is planned (conv_choice.h says in which order).
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/base/cuda_check.h"
#include "kernels/activation.h"
#include "kernels/conv.h"
#include "kernels/conv_choice.h"
#include "kernels/base/cuda_launch.h"

namespace unet {
namespace {

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

// Deterministic candidates within this much workspace come first (conv_choice.h).
constexpr size_t kWorkspaceBudget = size_t(1) << 30;
constexpr int kCandidates = 16;  // of cuDNN's ranking, per pass

enum Pass { kForward, kBackwardData, kBackwardFilter, kPasses };
const char* const kPassNames[kPasses] = {"forward", "backward-data", "backward-filter"};

// One pass's validated candidates, best first, and the one in use.
struct PassPlan {
  std::vector<ConvCandidate> order;
  size_t at = 0;
  const ConvCandidate& current() const { return order.at(at); }
};
using LayerPlan = std::array<PassPlan, kPasses>;
static_assert(CUDNN_TENSOR_OP_MATH == 1 && CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION == 2, "ConvCandidate::tensor_ops");

// Process-wide: a shape met again (the same layer in the next plan, or its twin
// at another level) reuses the choice, which a timed search makes expensive.
std::mutex g_cache_mutex;
std::map<std::string, LayerPlan> g_cache;

// cuDNN's ranking (a timed search, or its heuristics) in our terms.
template <class Perf>
std::vector<ConvCandidate> candidates(const Perf* perf, int count) {
  std::vector<ConvCandidate> c;
  for (int i = 0; i < count; ++i)
    c.push_back({int(perf[i].algo), int(perf[i].status), perf[i].determinism == CUDNN_DETERMINISTIC,
                 int(perf[i].mathType), perf[i].memory});
  return c;
}

bool capturing(Stream stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  UNET_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}

}  // namespace

struct ConvCudnn::Impl {
  cudnnHandle_t handle;
  Shape in, out;
  ConvSpec spec;
  DType type;  // of x, y, w and their gradients
  bool strict_fp32;
  std::string name;  // the layer's shapes, strides and precision, for messages
  cudnnTensorDescriptor_t x, y, bias;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv[kPasses];  // each with its algorithm's math type
  cudnnActivationDescriptor_t relu;
  mutable LayerPlan plan;  // a pass moves on when cuDNN declines its algorithm
  size_t workspace = 0;
  enum class Fusion { unknown, yes, no };
  mutable Fusion fusion = Fusion::unknown;  // decided by the first fused call outside a capture

  void use(Pass p, const ConvCandidate& c) const {
    UNET_CUDNN_CHECK(cudnnSetConvolutionMathType(conv[p], strict_fp32 ? CUDNN_FMA_MATH : cudnnMathType_t(c.math)));
  }
  // Runs `call(algo)` for pass p; where cuDNN declines the algorithm in an eager
  // call, the next validated one whose workspace fits takes its place for good.
  template <class Call>
  void run(Pass p, const Call& call, Stream stream) const {
    PassPlan& pp = plan[p];
    for (;;) {
      const cudnnStatus_t status = call(pp.current().algo);
      if (status == CUDNN_STATUS_SUCCESS) return;
      if (!cudnn_declines(status) || capturing(stream)) fail(p, status);
      const size_t was = pp.at;
      do ++pp.at;
      while (pp.at < pp.order.size() && pp.order[pp.at].workspace > workspace);
      if (pp.at >= pp.order.size()) {
        pp.at = was;
        fail(p, status);
      }
      use(p, pp.current());
      std::fprintf(stderr, "unet: cuDNN declined %s algorithm %d for %s (%s); using algorithm %d\n", kPassNames[p],
                   pp.order[was].algo, name.c_str(), cudnnGetErrorString(status), pp.current().algo);
    }
  }
  [[noreturn]] void fail(Pass p, cudnnStatus_t status) const {
    throw CudaError(std::string("cuDNN: the ") + kPassNames[p] + " convolution of layer " + name + " failed with " +
                    cudnnGetErrorString(status) + " (algorithm " + std::to_string(plan[p].current().algo) +
                    ", none left to try)");
  }
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
  m.strict_fp32 = type == DType::f32 && !tf32;
  m.name = conv_key(in, out_channels, spec, strides) + " " +
           (type != DType::f32 ? dtype_name(type) : tf32 ? "tf32" : "fp32");
  UNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&m.x));
  UNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&m.y));
  UNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&m.bias));
  UNET_CUDNN_CHECK(cudnnCreateFilterDescriptor(&m.w));
  for (auto& c : m.conv) UNET_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&c));
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
  // fp32 operands use TF32 tensor cores only when allowed (FMA math otherwise);
  // 16-bit ones may use tensor cores, accumulating in fp32 (the compute type).
  // The ranking is asked for under that math type; each pass then runs with
  // the math type cuDNN gives for its algorithm.
  const cudnnMathType_t ask = m.strict_fp32 ? CUDNN_FMA_MATH : type == DType::f32 ? CUDNN_DEFAULT_MATH : CUDNN_TENSOR_OP_MATH;
  for (auto& c : m.conv) {
    UNET_CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(c, nd, pad.data(), one.data(), one.data(),
                                                     CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    UNET_CUDNN_CHECK(cudnnSetConvolutionMathType(c, ask));
  }

  // Each pass is ranked and validated with the descriptors it will run with:
  // forward x -> y; the filter gradient x, dy; the data gradient dy -> packed dx.
  auto view = [&](Pass p) {
    describe(m.x, in, p == kBackwardData ? in.sample() : xs, type);
    describe(m.y, m.out, p == kForward ? ys : dys, type);
  };
  auto rank = [&](Pass p) {
    int n = 0;
    std::vector<ConvCandidate> c;
    if (p == kForward) {
      cudnnConvolutionFwdAlgoPerf_t perf[kCandidates];
      UNET_CUDNN_CHECK(search ? cudnnFindConvolutionForwardAlgorithm(handle, m.x, m.w, m.conv[p], m.y, kCandidates, &n, perf)
                              : cudnnGetConvolutionForwardAlgorithm_v7(handle, m.x, m.w, m.conv[p], m.y, kCandidates, &n, perf));
      c = candidates(perf, n);
    } else if (p == kBackwardData) {
      cudnnConvolutionBwdDataAlgoPerf_t perf[kCandidates];
      UNET_CUDNN_CHECK(search ? cudnnFindConvolutionBackwardDataAlgorithm(handle, m.w, m.y, m.conv[p], m.x, kCandidates, &n, perf)
                              : cudnnGetConvolutionBackwardDataAlgorithm_v7(handle, m.w, m.y, m.conv[p], m.x, kCandidates, &n, perf));
      c = candidates(perf, n);
    } else {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[kCandidates];
      UNET_CUDNN_CHECK(search ? cudnnFindConvolutionBackwardFilterAlgorithm(handle, m.x, m.y, m.conv[p], m.w, kCandidates, &n, perf)
                              : cudnnGetConvolutionBackwardFilterAlgorithm_v7(handle, m.x, m.y, m.conv[p], m.w, kCandidates, &n, perf));
      c = candidates(perf, n);
    }
    return rank_candidates(c, kWorkspaceBudget, m.strict_fp32);
  };
  // A candidate is valid when cuDNN sizes its workspace for these descriptors.
  auto workspace = [&](Pass p, const ConvCandidate& c, size_t* bytes) {
    m.use(p, c);
    if (p == kForward)
      return cudnnGetConvolutionForwardWorkspaceSize(handle, m.x, m.w, m.conv[p], m.y, cudnnConvolutionFwdAlgo_t(c.algo), bytes);
    if (p == kBackwardData)
      return cudnnGetConvolutionBackwardDataWorkspaceSize(handle, m.w, m.y, m.conv[p], m.x,
                                                          cudnnConvolutionBwdDataAlgo_t(c.algo), bytes);
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, m.x, m.y, m.conv[p], m.w,
                                                          cudnnConvolutionBwdFilterAlgo_t(c.algo), bytes);
  };

  std::lock_guard<std::mutex> lock(g_cache_mutex);
  auto it = g_cache.find(m.name);
  const bool cached = it != g_cache.end();
  if (cached) m.plan = it->second;
  for (int pi = 0; pi < kPasses; ++pi) {
    const Pass p = Pass(pi);
    view(p);
    PassPlan& pp = m.plan[p];
    if (!cached) {
      const ConvRanking r = rank(p);
      std::string tried = r.skipped;
      for (ConvCandidate c : r.order) {
        size_t bytes = 0;
        const cudnnStatus_t s = workspace(p, c, &bytes);
        if (s != CUDNN_STATUS_SUCCESS) {
          tried += "algorithm " + std::to_string(c.algo) + ": " + cudnnGetErrorString(s) + "; ";
          continue;
        }
        c.workspace = bytes;
        pp.order.push_back(c);
      }
      if (pp.order.empty())
        throw CudaError(std::string("cuDNN offers no ") + kPassNames[p] + " algorithm for layer " + m.name +
                        " (tried: " + (tried.empty() ? "cuDNN listed none" : tried) +
                        "); try another --precision, or a smaller batch or patch");
      if (!r.deterministic)
        std::fprintf(stderr,
                     "unet: cuDNN has no deterministic %s algorithm for layer %s; using a nondeterministic one "
                     "(runs will not repeat bit for bit)\n",
                     kPassNames[p], m.name.c_str());
    }
    m.use(p, pp.current());
    m.workspace = std::max(m.workspace, pp.current().workspace);
  }
  if (!cached) g_cache[m.name] = m.plan;
}

ConvCudnn::~ConvCudnn() {
  Impl& m = *impl_;
  cudnnDestroyTensorDescriptor(m.x);
  cudnnDestroyTensorDescriptor(m.y);
  cudnnDestroyTensorDescriptor(m.bias);
  cudnnDestroyFilterDescriptor(m.w);
  for (auto& c : m.conv) cudnnDestroyConvolutionDescriptor(c);
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
  m.run(
      kForward,
      [&](int algo) {
        return cudnnConvolutionForward(m.handle, &one, m.x, x.data, m.w, w, m.conv[kForward],
                                       cudnnConvolutionFwdAlgo_t(algo), workspace, m.workspace, &zero, m.y, y.data);
      },
      stream);
  if (!bias) return;
  if (m.type == DType::f32)
    UNET_CUDNN_CHECK(cudnnAddTensor(m.handle, &one, m.bias, bias, &one, m.y, y.data));
  else  // the fp32 bias onto 16-bit outputs: our kernel, which adds before rounding
    bias_act_forward_cuda(y, bias, {Activation::identity}, stream);
}

bool ConvCudnn::forward_bias_relu(const Tensor& x, const void* w, const float* bias, const Tensor& y,
                                  void* workspace, Stream stream) const {
  const Impl& m = *impl_;
  using Fusion = Impl::Fusion;
  if (m.fusion == Fusion::no || m.type != DType::f32) return false;
  // Undecided inside a capture: unfused, so that a declined call is never recorded.
  if (m.fusion == Fusion::unknown && capturing(stream)) return false;
  expect_shape("ConvCudnn::forward_bias_relu", "x", x.shape, m.in);
  expect_shape("ConvCudnn::forward_bias_relu", "y", y.shape, m.out);
  UNET_CUDNN_CHECK(cudnnSetStream(m.handle, stream));
  describe(m.x, x.shape, x.batch_stride, m.type);
  describe(m.y, y.shape, y.batch_stride, m.type);
  // alpha2 = 0: the z input (here y itself) does not contribute.
  const float one = 1.f, zero = 0.f;
  const cudnnStatus_t status = cudnnConvolutionBiasActivationForward(
      m.handle, &one, m.x, x.data, m.w, w, m.conv[kForward], cudnnConvolutionFwdAlgo_t(m.plan[kForward].current().algo),
      workspace, m.workspace, &zero, m.y, y.data, m.bias, bias, m.relu, m.y, y.data);
  if (m.fusion == Fusion::unknown) {
    // Declined for this layout or algorithm (any sub-code of bad parameter or
    // not supported): unfused from now on. Anything else is an error.
    m.fusion = cudnn_declines(status) ? Fusion::no : Fusion::yes;
    if (m.fusion == Fusion::no) return false;
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
  m.run(
      kBackwardFilter,
      [&](int algo) {
        return cudnnConvolutionBackwardFilter(m.handle, &one, m.x, x.data, m.y, dy.data, m.conv[kBackwardFilter],
                                              cudnnConvolutionBwdFilterAlgo_t(algo), workspace, m.workspace,
                                              m.type == DType::f32 ? &one : &zero, m.w, dw);
      },
      stream);
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
    m.run(
        kBackwardData,
        [&](int algo) {
          return cudnnConvolutionBackwardData(m.handle, &one, m.w, w, m.y, dy.data, m.conv[kBackwardData],
                                              cudnnConvolutionBwdDataAlgo_t(algo), workspace, m.workspace,
                                              mode == GradMode::accumulate ? &one : &zero, m.x, dx.data);
        },
        stream);
  }
}

}  // namespace unet
