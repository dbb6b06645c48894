// CUDA up-convolution (upconv.h): per sample, P = W^T X (all Co x taps outputs
// of every input position) by one cuBLAS GEMM, then a scatter into the output;
// backward gathers dy into that layout and runs the two GEMMs of dw and dx.
// The output positions are window_offset's, the CPU's.
#include <cublas_v2.h>

#include "kernels/base/cuda_check.h"
#include "kernels/base/cuda_launch.h"
#include "kernels/upconv.h"

namespace unet {
namespace {

// Binds the handle to the stream only when it is not already: cublasSetStream
// also resets the handle's workspace to cuBLAS's default pool, which would undo
// the one the CUDA backend gives it (and allocate inside a captured pass).
void bind(cublasHandle_t handle, cudaStream_t stream) {
  cudaStream_t current = nullptr;
  UNET_CUBLAS_CHECK(cublasGetStream(handle, &current));
  if (current != stream) UNET_CUBLAS_CHECK(cublasSetStream(handle, stream));
}

struct Geometry {
  int64_t ci, co, d, h, w;
  PoolWindow win;
  __host__ __device__ int64_t taps() const { return win.taps(); }
  __host__ __device__ int64_t in_plane() const { return d * h * w; }
};

Geometry geometry(const Shape& in, int64_t co, PoolWindow win) {
  return {in.c, co, in.d, in.h, in.w, window_for(in, win)};
}

// Where product element (tap, pos) goes in an output channel plane.
__device__ int64_t output_offset(const Geometry& g, int tap, int64_t pos) {
  const int64_t z = pos / (g.h * g.w), y = pos / g.w % g.h, x = pos % g.w;
  return window_offset(z, y, x, tap, g.win, g.win.h * g.h, g.win.w * g.w);
}

cudaDataType_t cuda_type(DType t) { return t == DType::f32 ? CUDA_R_32F : t == DType::bf16 ? CUDA_R_16BF : CUDA_R_16F; }

// Row-major C[m x n] = op(A) op(B) through column-major cuBLAS (C^T = op(B)^T
// op(A)^T). A and B of type ab, C of type c. fp32 throughout: cublasSgemm (TF32
// where the handle's math mode allows it); 16-bit operands: cublasGemmEx,
// accumulating in fp32.
void gemm(cublasHandle_t h, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const void* a,
          int64_t lda, const void* b, int64_t ldb, float beta, void* c, int64_t ldc, DType ab, DType ct) {
  const cublasOperation_t opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (ab == DType::f32 && ct == DType::f32) {
    UNET_CUBLAS_CHECK(cublasSgemm(h, opa, opb, int(n), int(m), int(k), &alpha, static_cast<const float*>(b), int(ldb),
                                  static_cast<const float*>(a), int(lda), &beta, static_cast<float*>(c), int(ldc)));
    return;
  }
  UNET_CUBLAS_CHECK(cublasGemmEx(h, opa, opb, int(n), int(m), int(k), &alpha, b, cuda_type(ab), int(ldb), a,
                                 cuda_type(ab), int(lda), &beta, c, cuda_type(ct), int(ldc), CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
}

// product[(co * taps + tap) * plane + pos] <-> y[co, window_offset(pos, tap)]
template <class T>
__global__ void scatter_kernel(const float* product, const float* bias, T* y, Geometry g, int64_t total) {
  const int64_t plane = g.in_plane(), out_plane = plane * g.taps();
  UNET_GRID_LOOP(i, total) {
    const int64_t row = i / plane, pos = i % plane, co = row / g.taps();
    const int tap = int(row % g.taps());
    store(y + co * out_plane + output_offset(g, tap, pos), product[i] + (bias ? bias[co] : 0.f));
  }
}

template <class T>
__global__ void gather_kernel(const T* dy, T* product, Geometry g, int64_t total) {
  const int64_t plane = g.in_plane(), out_plane = plane * g.taps();
  UNET_GRID_LOOP(i, total) {
    const int64_t row = i / plane, pos = i % plane, co = row / g.taps();
    const int tap = int(row % g.taps());
    product[i] = dy[co * out_plane + output_offset(g, tap, pos)];
  }
}

}  // namespace

int64_t upconv_workspace_floats_cuda(const Shape& in, int64_t out_channels, PoolWindow win) {
  const Geometry g = geometry(in, out_channels, win);
  return g.co * g.taps() * g.in_plane();
}

void upconv_forward_cuda(cublasContext* handle, const Tensor& x, const void* w, const float* bias, const Tensor& y,
                         float* workspace, Stream stream, PoolWindow win) {
  const Geometry g = geometry(x.shape, y.shape.c, win);
  expect_shape("upconv_forward_cuda", "y", y.shape, upconv_output_shape(x.shape, y.shape.c, win));
  expect_dtype("upconv_forward_cuda", "y", y, x.dtype);
  bind(handle, stream);
  const int64_t kdim = g.co * g.taps(), plane = g.in_plane(), total = kdim * plane;
  for (int64_t n = 0; n < x.shape.n; ++n) {
    // The product in fp32 whatever the type: the bias is added before rounding.
    gemm(handle, true, false, kdim, plane, g.ci, 1.f, w, kdim, x.at(n * x.batch_stride), plane, 0.f, workspace, plane,
         x.dtype, DType::f32);
    UNET_DISPATCH(y.dtype, T,
                  scatter_kernel<<<blocks_for(total), kThreads, 0, stream>>>(
                      workspace, bias, static_cast<T*>(y.at(n * y.batch_stride)), g, total));
    UNET_CUDA_CHECK_LAUNCH();
  }
}

void upconv_backward_cuda(cublasContext* handle, const Tensor& x, const void* w, const Tensor& dy, const Tensor& dx,
                          float* dw, float* dbias, GradMode mode, float* workspace, Stream stream,
                          PoolWindow win) {
  const Geometry g = geometry(x.shape, dy.shape.c, win);
  expect_shape("upconv_backward_cuda", "dy", dy.shape, upconv_output_shape(x.shape, dy.shape.c, win));
  expect_dtype("upconv_backward_cuda", "dy", dy, x.dtype);
  if (dx.data) expect_dtype("upconv_backward_cuda", "dx", dx, x.dtype);
  bind(handle, stream);
  const DType t = x.dtype;
  const int64_t kdim = g.co * g.taps(), plane = g.in_plane(), total = kdim * plane;
  for (int64_t n = 0; n < x.shape.n; ++n) {
    // dy gathered in its own type, the operand type of both GEMMs.
    UNET_DISPATCH(t, T,
                  gather_kernel<<<blocks_for(total), kThreads, 0, stream>>>(
                      static_cast<const T*>(dy.at(n * dy.batch_stride)), reinterpret_cast<T*>(workspace), g, total));
    UNET_CUDA_CHECK_LAUNCH();
    gemm(handle, false, true, g.ci, kdim, plane, 1.f, x.at(n * x.batch_stride), plane, workspace, plane, 1.f, dw, kdim,
         t, DType::f32);
    if (dx.data)
      gemm(handle, false, false, g.ci, plane, kdim, 1.f, w, kdim, workspace, plane,
           mode == GradMode::accumulate ? 1.f : 0.f, dx.at(n * dx.batch_stride), plane, t, t);
  }
  if (dbias) {
    launch_channel_sums(dy, dbias, stream);
    UNET_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace unet
