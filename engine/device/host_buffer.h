// Host memory for data that may go to a GPU: page-locked (cudaHostAlloc) when
// asked for and the CUDA backend is built, so that copies can be asynchronous;
// ordinary 64-byte-aligned memory otherwise (a CPU run never touches CUDA).
// RAII, movable, not copyable.
#pragma once

#include <cstddef>
#include <utility>

namespace unet {

class HostBuffer {
 public:
  HostBuffer() = default;
  explicit HostBuffer(size_t bytes, bool pinned = false);
  ~HostBuffer();
  HostBuffer(HostBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), bytes_(std::exchange(o.bytes_, 0)),
        pinned_(std::exchange(o.pinned_, false)) {}
  HostBuffer& operator=(HostBuffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(bytes_, o.bytes_);
    std::swap(pinned_, o.pinned_);
    return *this;
  }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  template <class T>
  T* as() const { return static_cast<T*>(data_); }
  size_t bytes() const { return bytes_; }
  bool pinned() const { return pinned_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  bool pinned_ = false;
};

}  // namespace unet
