// CUDA launchers for batch and instance norm (norm.h). One block per group
// reduces in double over a fixed partition and a fixed tree, so every run gives
// the same bits; the per-element arithmetic is norm.h's norm_apply and
// norm_input_grad, the CPU's own, in fp32 on tensors of any storage type.
#include <cmath>

#include "kernels/base/cuda_check.h"
#include "kernels/base/cuda_launch.h"
#include "kernels/norm.h"

namespace unet {
namespace {

struct Layout {
  int64_t n, c, plane, stride;  // stride: the tensor's batch stride
  bool batch;                   // batch norm: a group is a channel over all samples
  int64_t groups() const { return batch ? c : n * c; }
};

Layout layout(const Tensor& t, NormKind kind) {
  return {t.shape.n, t.shape.c, t.shape.spatial(), t.batch_stride, kind == NormKind::batch};
}

// Element e of group g (e in [0, count)).
__device__ int64_t element(const Layout& L, int64_t g, int64_t e) {
  const int64_t n = L.batch ? e / L.plane : g / L.c, c = L.batch ? g : g % L.c;
  return n * L.stride + c * L.plane + e % L.plane;
}

__device__ int64_t group_count(const Layout& L) { return L.batch ? L.n * L.plane : L.plane; }

// The block's sum of f(element index) over group g, in double; every thread gets it.
template <class F>
__device__ double block_sum(const Layout& L, int64_t g, F f) {
  __shared__ double partial[kThreads];
  double s = 0;
  for (int64_t e = threadIdx.x; e < group_count(L); e += blockDim.x) s += f(element(L, g, e));
  partial[threadIdx.x] = s;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const double total = partial[0];
  __syncthreads();  // partial is reused by the next call
  return total;
}

// Per group: the mean and the biased variance (two passes), as the CPU does.
template <class T>
__global__ void moments_kernel(const T* x, Layout L, double* mean, double* var) {
  const int64_t g = blockIdx.x;
  const double count = double(group_count(L));
  const double m = block_sum(L, g, [x](int64_t i) { return double(load(x + i)); }) / count;
  const double v = block_sum(L, g, [x, m](int64_t i) {
                     const double d = double(load(x + i)) - m;
                     return d * d;
                   }) / count;
  if (threadIdx.x == 0) mean[g] = m, var[g] = v;
}

__global__ void statistics_kernel(const double* mu, const double* var, float* mean, float* invstd,
                                  float* running_mean, float* running_var, int64_t groups, double count,
                                  NormSpec spec, bool batch) {
  UNET_GRID_LOOP(g, groups) {
    mean[g] = static_cast<float>(mu[g]);
    invstd[g] = static_cast<float>(1.0 / sqrt(var[g] + double(spec.eps)));
    if (batch && running_mean && running_var) {
      const double unbiased = count > 1 ? var[g] * count / (count - 1) : var[g];
      running_mean[g] = static_cast<float>((1.0 - spec.momentum) * running_mean[g] + spec.momentum * mu[g]);
      running_var[g] = static_cast<float>((1.0 - spec.momentum) * running_var[g] + spec.momentum * unbiased);
    }
  }
}

template <class T>
__global__ void apply_kernel(const T* x, T* y, Layout L, int64_t y_stride, const float* gamma,
                             const float* beta, const float* mean, const float* invstd, int64_t total) {
  UNET_GRID_LOOP(i, total) {
    const int64_t n = i / (L.c * L.plane), r = i % (L.c * L.plane), c = r / L.plane;
    const int64_t g = L.batch ? c : n * L.c + c;
    const float scale = gamma[c] * invstd[g], shift = beta[c] - mean[g] * scale;
    store(y + n * y_stride + r, norm_apply(load(x + n * L.stride + r), scale, shift));
  }
}

__global__ void running_invstd_kernel(const float* running_var, float* invstd, int64_t groups, float eps) {
  UNET_GRID_LOOP(g, groups) invstd[g] = static_cast<float>(1.0 / sqrt(double(running_var[g]) + double(eps)));
}

template <class T>
__global__ void backward_sums_kernel(const T* x, const T* dy, Layout L, int64_t dy_stride,
                                     const float* mean, const float* invstd, double* sum_dy, double* sum_dy_xhat) {
  const int64_t g = blockIdx.x;
  const int64_t shift = dy_stride - L.stride;  // dy may have its own batch stride
  const double mu = mean[g], inv = invstd[g];
  auto dy_at = [&](int64_t i) { return load(dy + i + (i / L.stride) * shift); };
  const double a = block_sum(L, g, [&](int64_t i) { return double(dy_at(i)); });
  const double b = block_sum(L, g, [&](int64_t i) { return double(dy_at(i)) * (double(load(x + i)) - mu) * inv; });
  if (threadIdx.x == 0) sum_dy[g] = a, sum_dy_xhat[g] = b;
}

template <class T>
__global__ void input_grad_kernel(const T* x, const T* dy, T* dx, Layout L, int64_t dy_stride,
                                  int64_t dx_stride, const float* gamma, const float* mean, const float* invstd,
                                  const double* sum_dy, const double* sum_dy_xhat, double m, int64_t total) {
  UNET_GRID_LOOP(i, total) {
    const int64_t n = i / (L.c * L.plane), r = i % (L.c * L.plane), c = r / L.plane;
    const int64_t g = L.batch ? c : n * L.c + c;
    const float k = gamma[c] * invstd[g];
    const float a = static_cast<float>(sum_dy[g] / m), b = static_cast<float>(sum_dy_xhat[g] / m);
    store(dx + n * dx_stride + r,
          norm_input_grad(load(dy + n * dy_stride + r), load(x + n * L.stride + r), mean[g], invstd[g], k, a, b));
  }
}

// dgamma, dbeta += each group's sum rounded to float, group by group: the CPU's order.
__global__ void param_grad_kernel(const double* sum_dy, const double* sum_dy_xhat, float* dgamma, float* dbeta,
                                  int64_t n, int64_t c, bool batch) {
  UNET_GRID_LOOP(ch, c) {
    for (int64_t s = 0; s < (batch ? 1 : n); ++s) {
      const int64_t g = batch ? ch : s * c + ch;
      dgamma[ch] += static_cast<float>(sum_dy_xhat[g]);
      dbeta[ch] += static_cast<float>(sum_dy[g]);
    }
  }
}

}  // namespace

void norm_forward_train_cuda(const Tensor& x, const Tensor& y, const float* gamma, const float* beta, float* mean,
                             float* invstd, float* running_mean, float* running_var, const NormSpec& spec,
                             double* workspace, Stream stream) {
  expect_shape("norm_forward_train_cuda", "y", y.shape, x.shape);
  expect_dtype("norm_forward_train_cuda", "y", y, x.dtype);
  const Layout L = layout(x, spec.kind);
  const int64_t groups = L.groups(), total = x.shape.count();
  if (total == 0) return;
  double* mu = workspace;
  double* var = workspace + groups;
  UNET_DISPATCH(x.dtype, T, moments_kernel<<<static_cast<unsigned>(groups), kThreads, 0, stream>>>(x.as<T>(), L, mu, var));
  UNET_CUDA_CHECK_LAUNCH();
  const double count = L.batch ? double(L.n * L.plane) : double(L.plane);
  statistics_kernel<<<blocks_for(groups), kThreads, 0, stream>>>(mu, var, mean, invstd, running_mean, running_var,
                                                                  groups, count, spec, L.batch);
  UNET_CUDA_CHECK_LAUNCH();
  UNET_DISPATCH(x.dtype, T,
                apply_kernel<<<blocks_for(total), kThreads, 0, stream>>>(x.as<T>(), y.as<T>(), L, y.batch_stride,
                                                                         gamma, beta, mean, invstd, total));
  UNET_CUDA_CHECK_LAUNCH();
}

void norm_forward_infer_cuda(const Tensor& x, const Tensor& y, const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var, const NormSpec& spec,
                             double* workspace, Stream stream) {
  expect_shape("norm_forward_infer_cuda", "y", y.shape, x.shape);
  expect_dtype("norm_forward_infer_cuda", "y", y, x.dtype);
  const Layout L = layout(x, spec.kind);
  const int64_t groups = L.groups(), total = x.shape.count();
  if (total == 0) return;
  if (!L.batch) {
    // Instance norm uses the instance's statistics: the training path, its mean
    // and invstd (floats) in the workspace's third slot.
    float* mean = reinterpret_cast<float*>(workspace + 2 * groups);
    norm_forward_train_cuda(x, y, gamma, beta, mean, mean + groups, nullptr, nullptr, spec, workspace, stream);
    return;
  }
  float* invstd = reinterpret_cast<float*>(workspace);
  running_invstd_kernel<<<blocks_for(groups), kThreads, 0, stream>>>(running_var, invstd, groups, spec.eps);
  UNET_CUDA_CHECK_LAUNCH();
  UNET_DISPATCH(x.dtype, T,
                apply_kernel<<<blocks_for(total), kThreads, 0, stream>>>(x.as<T>(), y.as<T>(), L, y.batch_stride,
                                                                         gamma, beta, running_mean, invstd, total));
  UNET_CUDA_CHECK_LAUNCH();
}

void norm_backward_cuda(const Tensor& x, const Tensor& dy, const Tensor& dx, const float* gamma, const float* mean,
                        const float* invstd, float* dgamma, float* dbeta, const NormSpec& spec, double* workspace,
                        Stream stream) {
  expect_shape("norm_backward_cuda", "dy", dy.shape, x.shape);
  expect_shape("norm_backward_cuda", "dx", dx.shape, x.shape);
  expect_dtype("norm_backward_cuda", "dy", dy, x.dtype);
  expect_dtype("norm_backward_cuda", "dx", dx, x.dtype);
  const Layout L = layout(x, spec.kind);
  const int64_t groups = L.groups(), total = x.shape.count();
  if (total == 0) return;
  double* sum_dy = workspace;
  double* sum_dy_xhat = workspace + groups;
  UNET_DISPATCH(x.dtype, T,
                backward_sums_kernel<<<static_cast<unsigned>(groups), kThreads, 0, stream>>>(
                    x.as<T>(), dy.as<T>(), L, dy.batch_stride, mean, invstd, sum_dy, sum_dy_xhat));
  UNET_CUDA_CHECK_LAUNCH();
  const double m = L.batch ? double(L.n * L.plane) : double(L.plane);
  UNET_DISPATCH(x.dtype, T,
                input_grad_kernel<<<blocks_for(total), kThreads, 0, stream>>>(
                    x.as<T>(), dy.as<T>(), dx.as<T>(), L, dy.batch_stride, dx.batch_stride, gamma, mean, invstd,
                    sum_dy, sum_dy_xhat, m, total));
  UNET_CUDA_CHECK_LAUNCH();
  param_grad_kernel<<<blocks_for(L.c), kThreads, 0, stream>>>(sum_dy, sum_dy_xhat, dgamma, dbeta, L.n, L.c, L.batch);
  UNET_CUDA_CHECK_LAUNCH();
}

}  // namespace unet
