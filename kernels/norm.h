// Batch normalization and instance normalization, with a per-channel affine
// (gamma, beta).
//
//   batch:    statistics per channel over (N, D, H, W); groups = C.
//   instance: statistics per (sample, channel) over (D, H, W); groups = N * C.
// y = gamma[c] * (x - mean[g]) * invstd[g] + beta[c], invstd = 1 / sqrt(var + eps),
// with the biased variance (divide by the group's count), as PyTorch does.
//
// Training mode computes the statistics of the batch, saves mean and invstd per
// group for backward, and (batch norm) updates the running statistics:
//   running = (1 - momentum) * running + momentum * batch_statistic,
// with the unbiased variance (count / (count - 1)) for running_var.
// Inference mode (batch norm) normalizes with the running statistics; instance
// norm always uses the statistics of the instance, as in training.
//
// Memory contract
//   norm_forward_train: reads x, gamma, beta; overwrites y, mean, invstd (groups
//                       entries each); batch norm reads and overwrites
//                       running_mean, running_var (C entries each).
//   norm_forward_infer: reads x, gamma, beta, running_mean, running_var (batch)
//                       ; overwrites y. (Instance norm: same as train without the
//                       saved statistics.)
//   norm_backward:      reads x, dy, gamma, mean, invstd; overwrites dx;
//                       accumulates (+=) into dgamma, dbeta.
// x and y are distinct buffers (backward needs x).
#pragma once

#include <functional>

#include "kernels/base/tensor.h"
#include "kernels/base/common.h"

namespace unet {

enum class NormKind { batch, instance };

struct NormSpec {
  NormKind kind = NormKind::batch;
  float eps = 1e-5f;
  float momentum = 0.1f;
};

inline int64_t norm_groups(NormKind kind, const Shape& s) { return kind == NormKind::batch ? s.c : s.n * s.c; }

// The per-element arithmetic, shared by the CPU loops and the CUDA kernels.
// Forward: y = x * scale + shift with scale = gamma * invstd, shift = beta - mean * scale.
UNET_HD float norm_apply(float x, float scale, float shift) { return x * scale + shift; }
// Backward: dx = k (dy - a - xhat b), k = gamma * invstd, a = sum(dy) / m, b = sum(dy xhat) / m.
UNET_HD float norm_input_grad(float dy, float x, float mean, float invstd, float k, float a, float b) {
  const float xhat = (x - mean) * invstd;
  return k * (dy - a - xhat * b);
}

// Synchronized batch norm (data parallelism): a function that sums per-channel
// sums over the ranks. Given one, batch norm's statistics are the global
// batch's (and so are the running statistics, the same on every rank), and dx
// is the derivative through them; dgamma and dbeta stay this rank's share, which
// the gradient all-reduce sums. Instance norm has nothing to share and ignores it.
using NormSumsReducer = std::function<void(double* sums, int64_t count)>;

void norm_forward_train(const Tensor& x, const Tensor& y, const float* gamma, const float* beta, float* mean,
                        float* invstd, float* running_mean, float* running_var, const NormSpec& spec,
                        const NormSumsReducer& reduce = nullptr);

#ifdef UNET_CUDA
// The same contracts on device pointers (no synchronized batch norm yet).
// `workspace` holds 3 x groups doubles; reductions run in a fixed order per
// group (one block each), so results repeat bit for bit (they differ from the
// CPU's in summation order only).
void norm_forward_train_cuda(const Tensor& x, const Tensor& y, const float* gamma, const float* beta, float* mean,
                             float* invstd, float* running_mean, float* running_var, const NormSpec& spec,
                             double* workspace, Stream stream);
void norm_forward_infer_cuda(const Tensor& x, const Tensor& y, const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var, const NormSpec& spec,
                             double* workspace, Stream stream);
void norm_backward_cuda(const Tensor& x, const Tensor& dy, const Tensor& dx, const float* gamma, const float* mean,
                        const float* invstd, float* dgamma, float* dbeta, const NormSpec& spec, double* workspace,
                        Stream stream);
#endif
void norm_forward_infer(const Tensor& x, const Tensor& y, const float* gamma, const float* beta,
                        const float* running_mean, const float* running_var, const NormSpec& spec);
void norm_backward(const Tensor& x, const Tensor& dy, const Tensor& dx, const float* gamma, const float* mean,
                   const float* invstd, float* dgamma, float* dbeta, const NormSpec& spec,
                   const NormSumsReducer& reduce = nullptr);

}  // namespace unet
