// Error checks for CUDA, cuDNN and cuBLAS calls.
//
// UNET_CUDA_CHECK(call) and friends throw unet::CudaError whose message carries
// the file, the line, the failing call and the library's own description.
// The _NOTHROW variants print the same and go on: for destructors.
#pragma once

#include <stdexcept>
#include <string>

namespace unet {

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_cuda_error(const char* library, const char* reason, const char* call,
                                   const char* file, int line);
void report_cuda_error(const char* library, const char* reason, const char* call, const char* file,
                       int line) noexcept;

}  // namespace unet

#ifdef UNET_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#define UNET_CUDA_CHECK(call)                                                                   \
  do {                                                                                          \
    cudaError_t unet_err_ = (call);                                                             \
    if (unet_err_ != cudaSuccess)                                                               \
      ::unet::throw_cuda_error("CUDA", cudaGetErrorString(unet_err_), #call, __FILE__, __LINE__); \
  } while (0)

#define UNET_CUDA_CHECK_NOTHROW(call)                                                            \
  do {                                                                                           \
    cudaError_t unet_err_ = (call);                                                              \
    if (unet_err_ != cudaSuccess)                                                                \
      ::unet::report_cuda_error("CUDA", cudaGetErrorString(unet_err_), #call, __FILE__, __LINE__); \
  } while (0)

#define UNET_CUDNN_CHECK(call)                                                                      \
  do {                                                                                              \
    cudnnStatus_t unet_err_ = (call);                                                               \
    if (unet_err_ != CUDNN_STATUS_SUCCESS)                                                          \
      ::unet::throw_cuda_error("cuDNN", cudnnGetErrorString(unet_err_), #call, __FILE__, __LINE__); \
  } while (0)

#define UNET_CUBLAS_CHECK(call)                                                                       \
  do {                                                                                                \
    cublasStatus_t unet_err_ = (call);                                                                \
    if (unet_err_ != CUBLAS_STATUS_SUCCESS)                                                           \
      ::unet::throw_cuda_error("cuBLAS", cublasGetStatusString(unet_err_), #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: launch errors are reported where the launch is.
#define UNET_CUDA_CHECK_LAUNCH() UNET_CUDA_CHECK(cudaGetLastError())
#endif
