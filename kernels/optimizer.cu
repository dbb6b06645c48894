// CUDA launcher for the optimizer step: one fused kernel over the flat buffers;
// the per-parameter arithmetic is optimizer.h's sgd_update / adam_update.
#include <cmath>
#include <stdexcept>
#include <string>

#include "engine/cuda_check.h"
#include "kernels/cuda_launch.h"
#include "kernels/optimizer.h"

namespace unet {
namespace {

__global__ void sgd_kernel(float* p, const float* g, float* buf, int64_t count, OptimizerSpec s, float lr,
                           float scale) {
  UNET_GRID_LOOP(i, count) sgd_update(p[i], g[i] * scale, buf[i], lr, s);
}

__global__ void adam_kernel(float* p, const float* g, float* m, float* v, int64_t count, OptimizerSpec s, float lr,
                            float bias1, float bias2, float scale) {
  UNET_GRID_LOOP(i, count) adam_update(p[i], g[i] * scale, m[i], v[i], lr, bias1, bias2, s);
}

__global__ void squares_kernel(const float* g, int64_t count, double* partial) {
  __shared__ double tree[kThreads];
  double s = 0;
  UNET_GRID_LOOP(i, count) s += double(g[i]) * double(g[i]);
  tree[threadIdx.x] = s;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) tree[threadIdx.x] += tree[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = tree[0];
}

__global__ void total_kernel(const double* partial, double* total) {
  double s = 0;
  for (int b = 0; b < kGradientNormBlocks; ++b) s += partial[b];
  *total = s;
}

}  // namespace

double gradient_norm_cuda(const float* grads, int64_t count, double* workspace, Stream stream) {
  squares_kernel<<<kGradientNormBlocks, kThreads, 0, stream>>>(grads, count, workspace);
  UNET_CUDA_CHECK_LAUNCH();
  total_kernel<<<1, 1, 0, stream>>>(workspace, workspace + kGradientNormBlocks);
  UNET_CUDA_CHECK_LAUNCH();
  double total = 0;
  UNET_CUDA_CHECK(cudaMemcpyAsync(&total, workspace + kGradientNormBlocks, sizeof total, cudaMemcpyDeviceToHost, stream));
  UNET_CUDA_CHECK(cudaStreamSynchronize(stream));
  return std::sqrt(total);
}

void optimizer_step_cuda(float* params, const float* grads, float* m, float* v, int64_t count,
                         const OptimizerSpec& spec, float lr, int64_t step, float grad_scale, Stream stream) {
  if (step < 1) throw std::invalid_argument("optimizer_step_cuda: step " + std::to_string(step) + " (it is 1-based)");
  if (count == 0) return;
  if (spec.kind == OptimizerKind::sgd) {
    sgd_kernel<<<blocks_for(count), kThreads, 0, stream>>>(params, grads, m, count, spec, lr, grad_scale);
  } else {
    // As optimizer_step: the bias corrections in double on the host, once per step.
    const float bias1 = static_cast<float>(1.0 - std::pow(double(spec.beta1), double(step)));
    const float bias2 = static_cast<float>(1.0 - std::pow(double(spec.beta2), double(step)));
    adam_kernel<<<blocks_for(count), kThreads, 0, stream>>>(params, grads, m, v, count, spec, lr, bias1, bias2,
                                                             grad_scale);
  }
  UNET_CUDA_CHECK_LAUNCH();
}

}  // namespace unet
