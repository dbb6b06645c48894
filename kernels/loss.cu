// CUDA launchers for the fused heads + losses (loss.h). Pass 1: a fixed grid,
// each thread summing its voxels (grid-stride) into doubles with the CPU's
// loss_voxel_sums, a tree per block, then one thread per sum adding the blocks
// in order: deterministic. The sums and the first bad label (if any) come to
// the host, where loss_terms (the CPU's) makes the loss and the coefficients;
// pass 2 is the CPU's loss_voxel_grad per voxel.
#include <climits>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/cuda_check.h"
#include "kernels/cuda_launch.h"
#include "kernels/loss.h"
#include "kernels/metrics.h"

namespace unet {
namespace {

constexpr int kLossBlocks = 128;  // fixed: the partition, and so the sums, do not depend on the device
constexpr int kLossThreads = 128;

struct Voxels {
  int64_t plane, voxels, logit_stride, dlogit_stride;
  int channels;
  bool sig;
  int32_t ignore_label, classes;
  const float* class_weights;  // device, or null
};

__device__ bool ignored(int32_t label, const Voxels& v) { return v.ignore_label >= 0 && label == v.ignore_label; }

__global__ void sums_kernel(const float* logits, const int32_t* labels, float* dlogits, Voxels v, double* partial,
                            unsigned long long* first_bad) {
  const int k = 3 * v.channels + 2;
  double acc[3 * kMaxLossChannels + 2];
  for (int j = 0; j < k; ++j) acc[j] = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < v.voxels; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / v.plane, e = i % v.plane;
    float* p = dlogits + n * v.dlogit_stride + e;
    const int32_t label = labels[i];
    if (ignored(label, v)) {
      for (int c = 0; c < v.channels; ++c) p[c * v.plane] = 0.f;
      continue;
    }
    if (label < 0 || label >= v.classes) {
      atomicMin(first_bad, static_cast<unsigned long long>(i));
      continue;
    }
    const double w = v.class_weights ? double(v.class_weights[label]) : 1.0;
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

__global__ void grad_kernel(const int32_t* labels, float* dlogits, Voxels v, LossTerms t) {
  UNET_GRID_LOOP(i, v.voxels) {
    const int32_t label = labels[i];
    if (ignored(label, v)) continue;  // pass 1 zeroed it
    const int64_t n = i / v.plane, e = i % v.plane;
    const float w = v.class_weights ? v.class_weights[label] : 1.f;
    loss_voxel_grad(dlogits + n * v.dlogit_stride + e, v.plane, v.channels, v.sig, label, t.ce_scale * w, t);
  }
}

}  // namespace

int64_t loss_workspace_doubles(const Shape& logits) {
  const int64_t k = 3 * logits.c + 2;
  return kLossBlocks * k + k + 1 + kMaxLossChannels;  // partials, sums, the first bad voxel, class weights
}

double loss_forward_backward_cuda(const Tensor& logits, const int32_t* labels, const Tensor& dlogits,
                                  const LossSpec& spec, double* workspace, Stream stream,
                                  const LossSumsReducer& reduce_sums) {
  expect_shape("loss_forward_backward_cuda", "dlogits", dlogits.shape, logits.shape);
  const Shape& sh = logits.shape;
  const int classes = head_classes(spec.head, sh);
  const int channels = static_cast<int>(sh.c);
  if (channels > kMaxLossChannels)
    throw std::invalid_argument("loss: " + std::to_string(channels) + " channels; at most " +
                                std::to_string(kMaxLossChannels) + " are supported");
  if (!spec.class_weights.empty() && static_cast<int>(spec.class_weights.size()) != classes)
    throw std::invalid_argument("loss: " + std::to_string(spec.class_weights.size()) + " class weights for " +
                                std::to_string(classes) + " classes");
  const int k = 3 * channels + 2;
  double* partial = workspace;
  double* sums = partial + kLossBlocks * k;
  auto* first_bad = reinterpret_cast<unsigned long long*>(sums + k);
  auto* weights = reinterpret_cast<float*>(sums + k + 1);
  const unsigned long long none = ULLONG_MAX;
  UNET_CUDA_CHECK(cudaMemcpyAsync(first_bad, &none, sizeof none, cudaMemcpyHostToDevice, stream));
  if (!spec.class_weights.empty())
    UNET_CUDA_CHECK(cudaMemcpyAsync(weights, spec.class_weights.data(), spec.class_weights.size() * sizeof(float),
                                    cudaMemcpyHostToDevice, stream));
  const Voxels v{sh.spatial(), sh.n * sh.spatial(), logits.batch_stride, dlogits.batch_stride, channels,
                 spec.head == Head::sigmoid, spec.ignore_label, classes,
                 spec.class_weights.empty() ? nullptr : weights};
  sums_kernel<<<kLossBlocks, kLossThreads, 0, stream>>>(logits.data, labels, dlogits.data, v, partial, first_bad);
  UNET_CUDA_CHECK_LAUNCH();
  total_kernel<<<1, kLossThreads, 0, stream>>>(partial, sums, k);
  UNET_CUDA_CHECK_LAUNCH();
  std::vector<double> host(static_cast<size_t>(k));
  unsigned long long bad = none;
  UNET_CUDA_CHECK(cudaMemcpyAsync(host.data(), sums, k * sizeof(double), cudaMemcpyDeviceToHost, stream));
  UNET_CUDA_CHECK(cudaMemcpyAsync(&bad, first_bad, sizeof bad, cudaMemcpyDeviceToHost, stream));
  UNET_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (bad != none) {
    int32_t label = 0;
    UNET_CUDA_CHECK(cudaMemcpy(&label, labels + bad, sizeof label, cudaMemcpyDeviceToHost));
    throw std::invalid_argument("loss: label " + std::to_string(label) + " at voxel " + std::to_string(bad) +
                                " is outside classes 0.." + std::to_string(classes - 1));
  }
  if (reduce_sums) reduce_sums(host);  // data parallel: the global batch's sums (on the host, where they are)
  const LossTerms t = loss_terms(host, spec, channels);
  grad_kernel<<<blocks_for(v.voxels), kThreads, 0, stream>>>(labels, dlogits.data, v, t);
  UNET_CUDA_CHECK_LAUNCH();
  return t.loss;
}

}  // namespace unet
