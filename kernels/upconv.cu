// CUDA up-convolution (upconv.h): per sample, P = W^T X (all Co x taps outputs
// of every input position) by one cuBLAS GEMM, then a scatter into the output;
// backward gathers dy into that layout and runs the two GEMMs of dw and dx.
// The output positions are upconv_output_offset's, the CPU's.
#include <cublas_v2.h>

#include "engine/cuda_check.h"
#include "kernels/cuda_launch.h"
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
  int64_t ci, co, d, h, w, zs;
  __host__ __device__ int64_t taps() const { return zs * 4; }
  __host__ __device__ int64_t in_plane() const { return d * h * w; }
};

Geometry geometry(const Shape& in, int64_t co) { return {in.c, co, in.d, in.h, in.w, in.dims == 3 ? 2 : 1}; }

// Row-major C[m x n] = op(A) op(B) through column-major cuBLAS (C^T = op(B)^T op(A)^T).
void gemm(cublasHandle_t h, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  UNET_CUBLAS_CHECK(cublasSgemm(h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, int(n), int(m),
                                int(k), &alpha, b, int(ldb), a, int(lda), &beta, c, int(ldc)));
}

// product[(co * taps + tap) * plane + pos] <-> y[co, upconv_output_offset(pos, tap)]
__global__ void scatter_kernel(const float* product, const float* bias, float* y, Geometry g, int64_t total) {
  const int64_t plane = g.in_plane(), out_plane = plane * g.taps();
  UNET_GRID_LOOP(i, total) {
    const int64_t row = i / plane, pos = i % plane, co = row / g.taps();
    const int tap = int(row % g.taps());
    const int64_t z = pos / (g.h * g.w), yy = pos / g.w % g.h, x = pos % g.w;
    y[co * out_plane + upconv_output_offset(z, yy, x, tap, g.h, g.w, g.zs)] = product[i] + (bias ? bias[co] : 0.f);
  }
}

__global__ void gather_kernel(const float* dy, float* product, Geometry g, int64_t total) {
  const int64_t plane = g.in_plane(), out_plane = plane * g.taps();
  UNET_GRID_LOOP(i, total) {
    const int64_t row = i / plane, pos = i % plane, co = row / g.taps();
    const int tap = int(row % g.taps());
    const int64_t z = pos / (g.h * g.w), yy = pos / g.w % g.h, x = pos % g.w;
    product[i] = dy[co * out_plane + upconv_output_offset(z, yy, x, tap, g.h, g.w, g.zs)];
  }
}

}  // namespace

int64_t upconv_workspace_floats_cuda(const Shape& in, int64_t out_channels) {
  const Geometry g = geometry(in, out_channels);
  return g.co * g.taps() * g.in_plane();
}

void upconv_forward_cuda(cublasContext* handle, const Tensor& x, const float* w, const float* bias, const Tensor& y,
                         float* workspace, Stream stream) {
  const Geometry g = geometry(x.shape, y.shape.c);
  expect_shape("upconv_forward_cuda", "y", y.shape, upconv_output_shape(x.shape, y.shape.c));
  bind(handle, stream);
  const int64_t kdim = g.co * g.taps(), plane = g.in_plane(), total = kdim * plane;
  for (int64_t n = 0; n < x.shape.n; ++n) {
    gemm(handle, true, false, kdim, plane, g.ci, 1.f, w, kdim, x.sample(n), plane, 0.f, workspace, plane);
    scatter_kernel<<<blocks_for(total), kThreads, 0, stream>>>(workspace, bias, y.sample(n), g, total);
    UNET_CUDA_CHECK_LAUNCH();
  }
}

void upconv_backward_cuda(cublasContext* handle, const Tensor& x, const float* w, const Tensor& dy, const Tensor& dx,
                          float* dw, float* dbias, GradMode mode, float* workspace, Stream stream) {
  const Geometry g = geometry(x.shape, dy.shape.c);
  expect_shape("upconv_backward_cuda", "dy", dy.shape, upconv_output_shape(x.shape, dy.shape.c));
  bind(handle, stream);
  const int64_t kdim = g.co * g.taps(), plane = g.in_plane(), total = kdim * plane;
  for (int64_t n = 0; n < x.shape.n; ++n) {
    gather_kernel<<<blocks_for(total), kThreads, 0, stream>>>(dy.sample(n), workspace, g, total);
    UNET_CUDA_CHECK_LAUNCH();
    gemm(handle, false, true, g.ci, kdim, plane, 1.f, x.sample(n), plane, workspace, plane, 1.f, dw, kdim);
    if (dx.data)
      gemm(handle, false, false, g.ci, plane, kdim, 1.f, w, kdim, workspace, plane,
           mode == GradMode::accumulate ? 1.f : 0.f, dx.sample(n), plane);
  }
  if (dbias) {
    channel_sum_kernel<<<static_cast<unsigned>(g.co), kThreads, 0, stream>>>(dy.data, dbias, dy.shape.n,
                                                                             dy.shape.spatial(), dy.batch_stride);
    UNET_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace unet
