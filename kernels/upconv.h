// Up-convolution: the transposed convolution with bias whose kernel and stride
// are a pooling window (pool_window.h: 2 x 2 x 2, or 1 along an axis the level
// did not pool) that undoes a level's max-pool on a U-Net's decoder path.
// Weights are [Ci, Co, kd, kh, kw] (2D: [Ci, Co, kh, kw]), PyTorch's
// ConvTranspose layout. Windows do not overlap, so every output element has
// exactly one tap:
//   y[co, kd z+a, kh y+b, kw x+c] = bias[co] + sum_ci x[ci, z, y, x] * w[ci, co, a, b, c]
// The CPU version is one GEMM per chunk of input rows
// (W^T x X: all Co * taps outputs of each input position) and a scatter; the
// workspace holds that product (upconv_workspace_floats).
//
// Memory contract
//   upconv_forward:  reads x, w, bias (may be null); overwrites y (may be a
//                    channel slice of the decoder's concatenation buffer).
//   upconv_backward: reads x, w, dy; writes dx per `mode`; accumulates (+=)
//                    into dw and dbias (may be null).
#pragma once

#include "kernels/base/tensor.h"
#include "kernels/base/common.h"
#include "kernels/pool_window.h"

namespace unet {

// The output of an input `in`: every axis times the window's.
Shape upconv_output_shape(const Shape& in, int64_t out_channels, PoolWindow win = {});
int64_t upconv_workspace_floats(const Shape& in, int64_t out_channels, PoolWindow win = {});
int64_t upconv_macs(const Shape& in, int64_t out_channels, PoolWindow win = {});  // forward; backward is twice this
inline int64_t upconv_weight_count(const Shape& in, int64_t out_channels, PoolWindow win = {}) {
  return in.c * out_channels * window_for(in, win).taps();
}

// Tap t of input position (z, y, x) lands at window_offset(z, y, x, t, win, H, W)
// of its output channel plane (H, W: the output's height and width).
void upconv_forward(const Tensor& x, const float* w, const float* bias, const Tensor& y, float* workspace,
                    PoolWindow win = {});
void upconv_backward(const Tensor& x, const float* w, const Tensor& dy, const Tensor& dx, float* dw, float* dbias,
                     GradMode mode, float* workspace, PoolWindow win = {});

#ifdef UNET_CUDA
}  // namespace unet
struct cublasContext;  // cublasHandle_t without the cuBLAS headers
namespace unet {
// The same contract on device pointers: one cuBLAS GEMM per sample and a
// scatter (gather in backward); the workspace holds upconv_workspace_floats_cuda.
// x, y, dy, dx and w share one element type: fp32, or under mixed precision
// bf16 or fp16 (w then the 16-bit copy of the weights; the GEMMs accumulate in
// fp32); bias, dw and dbias are fp32.
int64_t upconv_workspace_floats_cuda(const Shape& in, int64_t out_channels, PoolWindow win = {});
void upconv_forward_cuda(cublasContext* handle, const Tensor& x, const void* w, const float* bias, const Tensor& y,
                         float* workspace, Stream stream, PoolWindow win = {});
void upconv_backward_cuda(cublasContext* handle, const Tensor& x, const void* w, const Tensor& dy, const Tensor& dx,
                          float* dw, float* dbias, GradMode mode, float* workspace, Stream stream,
                          PoolWindow win = {});
#endif

}  // namespace unet
