// What host and device code share: the UNET_HD marker for arithmetic written once
// and compiled by both the C++ compiler (CPU backend) and nvcc (CUDA backend), so
// that the CPU tests exercise the same formulas the GPU kernels run.
#pragma once

#include <cstdint>

struct CUstream_st;  // cudaStream_t without the CUDA headers

#if defined(__CUDACC__)
#define UNET_HD __host__ __device__ __forceinline__
#else
#define UNET_HD inline
#endif

namespace unet {

using Stream = CUstream_st*;  // the same type as cudaStream_t

// How an op writes a gradient with respect to an activation: overwrite the
// buffer, or add into it (a U-Net encoder output feeds both the pooling and the
// skip connection, so its gradient is the sum of two backward passes).
enum class GradMode { overwrite, accumulate };

}  // namespace unet
