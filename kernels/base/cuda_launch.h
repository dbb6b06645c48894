// Launch geometry shared by the CUDA kernels (included by .cu files only):
// grid-stride loops of kThreads-thread blocks, the grid capped so that one
// launch covers any size with 64-bit indices.
#pragma once

#include <cstdint>

#include "kernels/base/tensor.h"
#include "kernels/base/half.h"

namespace unet {

constexpr int kThreads = 256;

inline int blocks_for(int64_t total) {
  const int64_t b = (total + kThreads - 1) / kThreads;
  return static_cast<int>(b < 65535 * 8 ? b : 65535 * 8);
}

// for (i : [0, total)) over every thread of the grid.
#define UNET_GRID_LOOP(i, total) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (total); i += int64_t(gridDim.x) * blockDim.x)

// Runs the statement with T the storage type of `dtype` (float, bf16 or f16):
// the launchers of kernels templated on their tensors' element type.
#define UNET_DISPATCH(dtype, T, ...)              \
  switch (dtype) {                                \
    case ::unet::DType::f32: {                    \
      using T = float;                            \
      __VA_ARGS__;                                \
    } break;                                      \
    case ::unet::DType::bf16: {                   \
      using T = ::unet::bf16;                     \
      __VA_ARGS__;                                \
    } break;                                      \
    case ::unet::DType::f16: {                    \
      using T = ::unet::f16;                      \
      __VA_ARGS__;                                \
    } break;                                      \
  }

// sums[c] += the sum of x[n, c, ...] over every sample n and the plane: one block
// per channel (launch with `channels` blocks of kThreads), a fixed per-thread
// order and a fixed tree, so the sum repeats bit for bit (no atomics). A
// template (on x's element type), so that every .cu including this header may launch it.
template <class T, int Threads = kThreads>
__global__ void channel_sum_kernel(const T* x, float* sums, int64_t samples, int64_t plane, int64_t batch_stride) {
  __shared__ float partial[Threads];
  const int64_t c = blockIdx.x;
  float s = 0.f;
  for (int64_t n = 0; n < samples; ++n) {
    const T* p = x + n * batch_stride + c * plane;
    for (int64_t i = threadIdx.x; i < plane; i += blockDim.x) s += load(p + i);
  }
  partial[threadIdx.x] = s;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) sums[c] += partial[0];
}

}  // namespace unet

namespace unet {

// channel_sum_kernel for a tensor of any element type: sums[c] += its channel sums.
inline void launch_channel_sums(const Tensor& t, float* sums, Stream stream) {
  if (t.shape.count() == 0) return;
  UNET_DISPATCH(t.dtype, T,
                channel_sum_kernel<T><<<static_cast<unsigned>(t.shape.c), kThreads, 0, stream>>>(
                    t.as<T>(), sums, t.shape.n, t.shape.spatial(), t.batch_stride));
}

}  // namespace unet
