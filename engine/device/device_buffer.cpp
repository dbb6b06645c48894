#include "engine/device/device_buffer.h"

#include <filesystem>

namespace unet {

CudaPresence cuda_presence() noexcept {
  CudaPresence p;
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err == cudaSuccess && n > 0) {
    p.count = n;
    return p;
  }
  cudaGetLastError();  // clear a sticky error
  std::error_code ec;
  const bool driver = std::filesystem::exists("/proc/driver/nvidia/version", ec);
  const std::string why = err == cudaSuccess ? "no device" : std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
  // No libcuda at all reads as an insufficient driver (or as the toolkit's stub).
  const bool no_driver = !driver && (err == cudaErrorInsufficientDriver || err == cudaErrorStubLibrary);
  if (err == cudaSuccess || err == cudaErrorNoDevice || no_driver)
    p.absent = "no CUDA GPU on this machine (" + why + ")";
  else
    p.error = "the CUDA GPU cannot be used: " + why + (driver ? " (an NVIDIA driver is loaded: check that it suits CUDA " +
                                                                    std::to_string(CUDART_VERSION / 1000) + ")"
                                                              : "");
  return p;
}

int cuda_device_count() noexcept { return cuda_presence().count; }

}  // namespace unet
