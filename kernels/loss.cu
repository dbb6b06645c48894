// CUDA launchers for the fused heads + losses (loss.h). Pass 1: a fixed grid,
// each thread summing its voxels (grid-stride) into doubles with the CPU's
// loss_voxel_sums, a tree per block, then one thread per sum adding the blocks
// in order: deterministic. One thread then makes the loss and the coefficients
// with the CPU's loss_terms, on the device, so that the step's loss scale is
// read there and nothing waits for the host; pass 2 is the CPU's
// loss_voxel_grad per voxel.
#include <climits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/base/cuda_check.h"
#include "kernels/base/cuda_launch.h"
#include "kernels/loss.h"
#include "kernels/metrics.h"

namespace unet {
namespace {

constexpr int kLossBlocks = 128;  // fixed: the partition, and so the sums, do not depend on the device
constexpr int kLossThreads = 128;

struct Voxels {
  int64_t plane, voxels, logit_stride, dlogit_stride;
  int channels;
  bool sig, weighted;
  int32_t ignore_label, classes;
  float class_weights[kMaxLossChannels];  // when weighted
};

__device__ bool counted(int32_t label, const Voxels& v) {
  return !(v.ignore_label >= 0 && label == v.ignore_label) && label >= 0 && label < v.classes;
}

// Pass 1. An ignored voxel gets a zero gradient; so does one whose label is
// outside the classes, recorded in first_bad (the step is then not taken).
__global__ void sums_kernel(const float* logits, const int32_t* labels, float* dlogits, Voxels v, double* partial,
                            unsigned long long* first_bad) {
  const int k = 3 * v.channels + 2;
  double acc[3 * kMaxLossChannels + 2];
  for (int j = 0; j < k; ++j) acc[j] = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < v.voxels; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / v.plane, e = i % v.plane;
    float* p = dlogits + n * v.dlogit_stride + e;
    const int32_t label = labels[i];
    if (!counted(label, v)) {
      for (int c = 0; c < v.channels; ++c) p[c * v.plane] = 0.f;
      if (!(v.ignore_label >= 0 && label == v.ignore_label)) atomicMin(first_bad, static_cast<unsigned long long>(i));
      continue;
    }
    const double w = v.weighted ? double(v.class_weights[label]) : 1.0;
    loss_voxel_sums(logits + n * v.logit_stride + e, p, v.plane, v.channels, v.sig, label, w, acc);
  }
  __shared__ double tree[kLossThreads];
  for (int j = 0; j < k; ++j) {
    tree[threadIdx.x] = acc[j];
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
      if (threadIdx.x < stride) tree[threadIdx.x] += tree[threadIdx.x + stride];
      __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x * k + j] = tree[0];
    __syncthreads();
  }
}

__global__ void total_kernel(const double* partial, double* sums, int k) {
  for (int j = threadIdx.x; j < k; j += blockDim.x) {
    double s = 0;
    for (int b = 0; b < kLossBlocks; ++b) s += partial[b * k + j];
    sums[j] = s;
  }
}

// One thread: the loss into the step's outputs, the coefficients for pass 2,
// and the first bad label of the step.
__global__ void terms_kernel(const double* sums, LossScalars s, int channels, const StepInputs* in, StepOutputs* out,
                             LossTerms* terms, const unsigned long long* first_bad, const int32_t* labels) {
  *terms = loss_terms(sums, s, channels, in->loss_scale);
  out->loss += terms->loss / in->accumulate;
  if (*first_bad != ULLONG_MAX && out->first_bad == kNoBadLabel) {
    out->first_bad = *first_bad;
    out->bad_label = labels[*first_bad];
  }
}

__global__ void grad_kernel(const int32_t* labels, float* dlogits, Voxels v, const LossTerms* terms) {
  const LossTerms& t = *terms;
  UNET_GRID_LOOP(i, v.voxels) {
    const int32_t label = labels[i];
    if (!counted(label, v)) continue;  // pass 1 zeroed it
    const int64_t n = i / v.plane, e = i % v.plane;
    const float w = v.weighted ? v.class_weights[label] : 1.f;
    loss_voxel_grad(dlogits + n * v.dlogit_stride + e, v.plane, v.channels, v.sig, label, t.ce_scale * w, t);
  }
}

// Doubles the workspace gives a T.
template <class T>
constexpr int64_t doubles_for() {
  return (int64_t(sizeof(T)) + 7) / 8;
}

}  // namespace

int64_t loss_workspace_doubles(const Shape& logits) {
  const int64_t k = 3 * logits.c + 2;
  // partials, sums, the first bad voxel, the terms; loss_forward_backward_cuda's step scalars
  return kLossBlocks * k + k + 1 + doubles_for<LossTerms>() + doubles_for<StepInputs>() + doubles_for<StepOutputs>();
}

void loss_step_cuda(const Tensor& logits, const int32_t* labels, const Tensor& dlogits, const LossSpec& spec,
                    const StepInputs* in, StepOutputs* out, double* workspace, Stream stream,
                    const LossSumsReducer& reduce_sums) {
  check_loss(logits, dlogits, spec);
  const Shape& sh = logits.shape;
  const int classes = head_classes(spec.head, sh);
  const int channels = static_cast<int>(sh.c);
  const int k = 3 * channels + 2;
  double* partial = workspace;
  double* sums = partial + kLossBlocks * k;
  auto* first_bad = reinterpret_cast<unsigned long long*>(sums + k);
  auto* terms = reinterpret_cast<LossTerms*>(sums + k + 1);
  Voxels v{sh.spatial(), sh.n * sh.spatial(), logits.batch_stride, dlogits.batch_stride, channels,
           spec.head == Head::sigmoid, !spec.class_weights.empty(), spec.ignore_label, classes, {}};
  for (size_t c = 0; c < spec.class_weights.size(); ++c) v.class_weights[c] = spec.class_weights[c];
  UNET_CUDA_CHECK(cudaMemsetAsync(first_bad, 0xFF, sizeof *first_bad, stream));  // none yet
  sums_kernel<<<kLossBlocks, kLossThreads, 0, stream>>>(logits.data, labels, dlogits.data, v, partial, first_bad);
  UNET_CUDA_CHECK_LAUNCH();
  total_kernel<<<1, kLossThreads, 0, stream>>>(partial, sums, k);
  UNET_CUDA_CHECK_LAUNCH();
  if (reduce_sums) {  // data parallel: the global batch's sums, over the ranks on the host
    std::vector<double> host(static_cast<size_t>(k));
    UNET_CUDA_CHECK(cudaMemcpyAsync(host.data(), sums, k * sizeof(double), cudaMemcpyDeviceToHost, stream));
    UNET_CUDA_CHECK(cudaStreamSynchronize(stream));
    reduce_sums(host);
    UNET_CUDA_CHECK(cudaMemcpyAsync(sums, host.data(), k * sizeof(double), cudaMemcpyHostToDevice, stream));
    UNET_CUDA_CHECK(cudaStreamSynchronize(stream));  // `host` goes out of scope
  }
  terms_kernel<<<1, 1, 0, stream>>>(sums, loss_scalars(spec), channels, in, out, terms, first_bad, labels);
  UNET_CUDA_CHECK_LAUNCH();
  grad_kernel<<<blocks_for(v.voxels), kThreads, 0, stream>>>(labels, dlogits.data, v, terms);
  UNET_CUDA_CHECK_LAUNCH();
}

double loss_forward_backward_cuda(const Tensor& logits, const int32_t* labels, const Tensor& dlogits,
                                  const LossSpec& spec, double* workspace, Stream stream) {
  // The step's scalars at the workspace's end.
  double* scalars = workspace + loss_workspace_doubles(logits.shape) - doubles_for<StepInputs>() -
                    doubles_for<StepOutputs>();
  auto* in = reinterpret_cast<StepInputs*>(scalars);
  auto* out = reinterpret_cast<StepOutputs*>(scalars + doubles_for<StepInputs>());
  StepInputs host_in;
  host_in.loss_scale = spec.grad_scale;
  StepOutputs host_out;
  UNET_CUDA_CHECK(cudaMemcpyAsync(in, &host_in, sizeof host_in, cudaMemcpyHostToDevice, stream));
  UNET_CUDA_CHECK(cudaMemcpyAsync(out, &host_out, sizeof host_out, cudaMemcpyHostToDevice, stream));
  loss_step_cuda(logits, labels, dlogits, spec, in, out, workspace, stream);
  UNET_CUDA_CHECK(cudaMemcpyAsync(&host_out, out, sizeof host_out, cudaMemcpyDeviceToHost, stream));
  UNET_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (host_out.first_bad != kNoBadLabel)
    throw std::invalid_argument(bad_label_message(host_out.bad_label, static_cast<int64_t>(host_out.first_bad),
                                                  head_classes(spec.head, logits.shape), spec.ignore_label));
  return host_out.loss;
}

}  // namespace unet
