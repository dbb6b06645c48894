// CUDA launchers for the optimizer step: one fused kernel over the flat buffers;
// the per-parameter arithmetic is optimizer.h's sgd_update / adam_update. The
// step's scalars come as arguments (optimizer_step_cuda) or from the training
// step's inputs and outputs in device memory (step_update_cuda), which a
// captured step replays whatever their values.
#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/base/cuda_check.h"
#include "kernels/base/cuda_launch.h"
#include "kernels/optimizer.h"

namespace unet {
namespace {

struct Scalars {
  float lr, bias1, bias2, grad_scale;
};
struct Given {
  Scalars s;
  __device__ bool get(Scalars& out) const {
    out = s;
    return true;
  }
};
struct FromStep {  // the step is not taken when its factor is 0 (step.h)
  const StepInputs* in;
  const StepOutputs* out;
  __device__ bool get(Scalars& s) const {
    s = {in->lr, in->bias1, in->bias2, out->factor};
    return s.grad_scale != 0.f;
  }
};

template <class Source>
__global__ void sgd_kernel(float* p, const float* g, float* buf, int64_t count, OptimizerSpec s, Source source) {
  Scalars k;
  if (!source.get(k)) return;
  UNET_GRID_LOOP(i, count) sgd_update(p[i], g[i] * k.grad_scale, buf[i], k.lr, s);
}

template <class Source>
__global__ void adam_kernel(float* p, const float* g, float* m, float* v, int64_t count, OptimizerSpec s,
                            Source source) {
  Scalars k;
  if (!source.get(k)) return;
  UNET_GRID_LOOP(i, count) adam_update(p[i], g[i] * k.grad_scale, m[i], v[i], k.lr, k.bias1, k.bias2, s);
}

template <class Source>
void launch_update(float* params, const float* grads, float* m, float* v, int64_t count, const OptimizerSpec& spec,
                   Source source, Stream stream) {
  if (count == 0) return;
  if (spec.kind == OptimizerKind::sgd)
    sgd_kernel<<<blocks_for(count), kThreads, 0, stream>>>(params, grads, m, count, spec, source);
  else
    adam_kernel<<<blocks_for(count), kThreads, 0, stream>>>(params, grads, m, v, count, spec, source);
  UNET_CUDA_CHECK_LAUNCH();
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

__device__ double add_blocks(const double* partial) {
  double s = 0;
  for (int b = 0; b < kGradientNormBlocks; ++b) s += partial[b];
  return s;
}

__global__ void total_kernel(const double* partial, double* total) { *total = add_blocks(partial); }

__global__ void factor_kernel(const double* partial, const StepInputs* in, StepOutputs* out) {
  out->sumsq = add_blocks(partial);
  out->factor = step_factor(*out, *in);
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
  // As optimizer_step: the bias corrections in double on the host, once per step.
  const Given given{{lr, adam_bias(spec.beta1, step), adam_bias(spec.beta2, step), grad_scale}};
  launch_update(params, grads, m, v, count, spec, given, stream);
}

void step_update_cuda(float* params, const float* grads, float* m, float* v, int64_t count, const ParamRanges& ranges,
                      const OptimizerSpec& spec, const StepInputs* in, StepOutputs* out, double* workspace,
                      Stream stream) {
  squares_kernel<<<kGradientNormBlocks, kThreads, 0, stream>>>(grads, count, workspace);
  UNET_CUDA_CHECK_LAUNCH();
  factor_kernel<<<1, 1, 0, stream>>>(workspace, in, out);
  UNET_CUDA_CHECK_LAUNCH();
  for (const auto& [offset, n] : ranges)
    launch_update(params + offset, grads + offset, m + offset, v + offset, n, spec, FromStep{in, out}, stream);
}

}  // namespace unet
