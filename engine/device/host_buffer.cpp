#include "engine/device/host_buffer.h"

#include <cstdlib>
#include <new>

#ifdef UNET_CUDA
#include "kernels/base/cuda_check.h"
#endif

namespace unet {

HostBuffer::HostBuffer(size_t bytes, bool pinned) : bytes_(bytes) {
  if (bytes == 0) return;
#ifdef UNET_CUDA
  if (pinned) {
    UNET_CUDA_CHECK(cudaHostAlloc(&data_, bytes, cudaHostAllocDefault));
    pinned_ = true;
    return;
  }
#endif
  // 64-byte alignment for vector loads; aligned_alloc wants a multiple of it.
  data_ = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!data_) throw std::bad_alloc();
}

HostBuffer::~HostBuffer() {
  if (!data_) return;
#ifdef UNET_CUDA
  if (pinned_) {
    UNET_CUDA_CHECK_NOTHROW(cudaFreeHost(data_));
    return;
  }
#endif
  std::free(data_);
}

}  // namespace unet
