// An RAII device buffer: cudaMalloc on construction, cudaFree on destruction,
// movable, not copyable. Copies to and from the host are explicit and take the
// stream; nothing moves between host and device behind the caller's back.
#pragma once

#ifdef UNET_CUDA
#include <cstddef>
#include <string>
#include <utility>

#include "kernels/base/cuda_check.h"

namespace unet {

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count) : count_(count) {
    if (count) UNET_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), bytes()));
  }
  ~DeviceBuffer() {
    if (data_) UNET_CUDA_CHECK_NOTHROW(cudaFree(data_));
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(count_, o.count_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* data() const { return data_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }

  void copy_from_host(const T* src, cudaStream_t stream) {
    UNET_CUDA_CHECK(cudaMemcpyAsync(data_, src, bytes(), cudaMemcpyHostToDevice, stream));
  }
  void copy_to_host(T* dst, cudaStream_t stream) const {
    UNET_CUDA_CHECK(cudaMemcpyAsync(dst, data_, bytes(), cudaMemcpyDeviceToHost, stream));
  }
  void zero(cudaStream_t stream) { UNET_CUDA_CHECK(cudaMemsetAsync(data_, 0, bytes(), stream)); }

 private:
  T* data_ = nullptr;
  size_t count_ = 0;
};

// Whether CUDA GPUs can be used here. No GPU, or no NVIDIA driver at all, is an
// absence (`absent` says which); any other failure, such as a driver too old
// for this CUDA runtime, is an `error`: a GPU machine must not pass over it.
struct CudaPresence {
  int count = 0;
  std::string absent, error;
};
CudaPresence cuda_presence() noexcept;

// Number of usable CUDA devices, 0 when absent or failing (never throws).
int cuda_device_count() noexcept;

}  // namespace unet
#endif
