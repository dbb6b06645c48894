// Up-convolution: the 2 x 2 (x 2) transposed convolution of stride 2 with bias
// that doubles the resolution on a U-Net's decoder path. Weights are
// [Ci, Co, kd, 2, 2] (kd = 2 in 3D, 1 in 2D), PyTorch's ConvTranspose layout.
// Windows do not overlap, so every output element has exactly one tap:
//   y[co, 2z+a, 2y+b, 2x+c] = bias[co] + sum_ci x[ci, z, y, x] * w[ci, co, a, b, c]
// (z doubles in 3D only). The CPU version is one GEMM per chunk of input rows
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

namespace unet {

Shape upconv_output_shape(const Shape& in, int64_t out_channels);
int64_t upconv_workspace_floats(const Shape& in, int64_t out_channels);
int64_t upconv_macs(const Shape& in, int64_t out_channels);  // forward; backward is twice this
// Weights of a 2x2 (2D) or 2x2x2 (3D) up-convolution, stride 2.
inline int64_t upconv_weight_count(int dims, int64_t in_channels, int64_t out_channels) {
  return in_channels * out_channels * (dims == 3 ? 8 : 4);
}

void upconv_forward(const Tensor& x, const float* w, const float* bias, const Tensor& y, float* workspace);
void upconv_backward(const Tensor& x, const float* w, const Tensor& dy, const Tensor& dx, float* dw, float* dbias,
                     GradMode mode, float* workspace);

// Where input position (z, y, x) of an h x w plane sends tap t = (a * 2 + b) * 2 + c
// within an output channel plane (zs: 2 in 3D, 1 in 2D). Shared by the CPU scatter
// and the CUDA kernels.
UNET_HD int64_t upconv_output_offset(int64_t z, int64_t y, int64_t x, int tap, int64_t h, int64_t w, int64_t zs) {
  const int64_t a = tap / 4, b = (tap / 2) % 2, c = tap % 2;
  return ((zs * z + a) * 2 * h + 2 * y + b) * 2 * w + 2 * x + c;
}

#ifdef UNET_CUDA
}  // namespace unet
struct cublasContext;  // cublasHandle_t without the cuBLAS headers
namespace unet {
// The same contract on device pointers: one cuBLAS GEMM per sample and a
// scatter (gather in backward); the workspace holds upconv_workspace_floats_cuda.
// x, y, dy, dx and w share one element type: fp32, or under mixed precision
// bf16 or fp16 (w then the 16-bit copy of the weights; the GEMMs accumulate in
// fp32); bias, dw and dbias are fp32.
int64_t upconv_workspace_floats_cuda(const Shape& in, int64_t out_channels);
void upconv_forward_cuda(cublasContext* handle, const Tensor& x, const void* w, const float* bias, const Tensor& y,
                         float* workspace, Stream stream);
void upconv_backward_cuda(cublasContext* handle, const Tensor& x, const void* w, const Tensor& dy, const Tensor& dx,
                          float* dw, float* dbias, GradMode mode, float* workspace, Stream stream);
#endif

}  // namespace unet
