// CUDA launcher for convert (convert.h): one thread per element, half.h's rounding.
#include "kernels/base/cuda_check.h"
#include "kernels/convert.h"
#include "kernels/base/cuda_launch.h"
#include "kernels/base/half.h"

namespace unet {
namespace {

template <class From, class To>
__global__ void convert_kernel(const From* src, To* dst, int64_t count, bool accumulate) {
  UNET_GRID_LOOP(i, count) store(dst + i, accumulate ? load(dst + i) + load(src + i) : load(src + i));
}

}  // namespace

void convert_cuda(const void* src, DType from, void* dst, DType to, int64_t count, GradMode mode, Stream stream) {
  if (count == 0) return;
  const bool acc = mode == GradMode::accumulate;
  UNET_DISPATCH(from, From, UNET_DISPATCH(to, To,
                                          convert_kernel<<<blocks_for(count), kThreads, 0, stream>>>(
                                              static_cast<const From*>(src), static_cast<To*>(dst), count, acc)));
  UNET_CUDA_CHECK_LAUNCH();
}

}  // namespace unet
