// The CUDA backend: one GPU, a compute stream and a copy stream, cuDNN and
// cuBLAS handles bound to the compute stream, the reductions' scratch. Device
// memory comes from cudaMalloc when the net is planned; a step allocates
// nothing (ops::reserve sizes the scratch then).
#include <algorithm>
#include <cstdint>

#include "engine/device/backend.h"
#include "kernels/base/cuda_check.h"
#include "engine/device/device_buffer.h"

namespace unet {
namespace {

std::string mib(int64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, Precision precision, bool graphs)
      : device_(device), type_(storage_type(precision)), tf32_(precision == Precision::tf32) {
    graphs_.enabled = graphs;
    UNET_CUDA_CHECK(cudaSetDevice(device));
    cudaDeviceProp prop{};
    UNET_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    name_ = "cuda:" + std::to_string(device) + " " + prop.name;
    UNET_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    UNET_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
    UNET_CUDA_CHECK(cudaEventCreateWithFlags(&copied_, cudaEventDisableTiming));
    UNET_CUDA_CHECK(cudaEventCreateWithFlags(&fence_, cudaEventDisableTiming));
    UNET_CUDNN_CHECK(cudnnCreate(&cudnn_));
    UNET_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
    UNET_CUBLAS_CHECK(cublasCreate(&cublas_));
    UNET_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    // FP32 GEMMs (cuBLAS's default math) unless TF32 was asked for.
    UNET_CUBLAS_CHECK(cublasSetMathMode(cublas_, tf32_ ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    // cuBLAS's own workspace, given rather than left to cuBLAS, which would
    // allocate it on first use: nothing may allocate inside a captured pass.
    cublas_workspace_ = allocate(kCublasWorkspace);
    UNET_CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_.get(), kCublasWorkspace));
  }
  ~CudaBackend() override {
    conv_plans_.clear();  // their cuDNN descriptors go before the handle
    cublas_workspace_.reset();
    scratch_.reset();
    if (cublas_) cublasDestroy(cublas_);
    if (cudnn_) cudnnDestroy(cudnn_);
    if (copied_) UNET_CUDA_CHECK_NOTHROW(cudaEventDestroy(copied_));
    if (fence_) UNET_CUDA_CHECK_NOTHROW(cudaEventDestroy(fence_));
    if (copy_stream_) UNET_CUDA_CHECK_NOTHROW(cudaStreamDestroy(copy_stream_));
    if (stream_) UNET_CUDA_CHECK_NOTHROW(cudaStreamDestroy(stream_));
  }

  std::string name() const override { return name_; }
  bool is_cuda() const override { return true; }
  bool separate_memory() const override { return true; }
  Stream stream() const override { return stream_; }

  Memory allocate(int64_t bytes) override {
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, static_cast<size_t>(std::max<int64_t>(bytes, 1)));
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // not sticky: clear it
      throw OutOfMemory("cuda:" + std::to_string(device_) + ": cannot allocate " + mib(bytes) + " (" +
                        mib(free_bytes()) + " free)");
    }
    UNET_CUDA_CHECK(err);
    // Zeroed before it is handed out: a batch staged into it next is copied on
    // the copy stream, which does not wait for the compute stream's memset.
    // (Allocation happens when a net is planned, never inside a step.)
    UNET_CUDA_CHECK(cudaMemsetAsync(p, 0, static_cast<size_t>(bytes), stream_));
    UNET_CUDA_CHECK(cudaStreamSynchronize(stream_));
    held_ += bytes;
    peak_ = std::max(peak_, held_);
    return Memory(p, [this, bytes](void* q) {
      UNET_CUDA_CHECK_NOTHROW(cudaFree(q));
      held_ -= bytes;
    });
  }
  void upload(void* dst, const void* host, int64_t bytes) override {
    if (bytes) UNET_CUDA_CHECK(cudaMemcpyAsync(dst, host, size_t(bytes), cudaMemcpyHostToDevice, stream_));
  }
  void download(void* host, const void* src, int64_t bytes) override {
    if (bytes) UNET_CUDA_CHECK(cudaMemcpyAsync(host, src, size_t(bytes), cudaMemcpyDeviceToHost, stream_));
    synchronize();
  }
  // A batch's copies start at once on their own stream, beside the ops still
  // running on the compute stream, after those queued before the previous
  // batch's (which read the buffers this one fills: the model alternates two).
  void begin_batch() override {
    if (fenced_) UNET_CUDA_CHECK(cudaStreamWaitEvent(copy_stream_, fence_, 0));
    UNET_CUDA_CHECK(cudaEventRecord(fence_, stream_));
    fenced_ = true;
  }
  void stage(void* dst, const void* host, int64_t bytes) override {
    if (!bytes) return;
    UNET_CUDA_CHECK(cudaMemcpyAsync(dst, host, size_t(bytes), cudaMemcpyHostToDevice, copy_stream_));
    UNET_CUDA_CHECK(cudaEventRecord(copied_, copy_stream_));
    UNET_CUDA_CHECK(cudaStreamWaitEvent(stream_, copied_, 0));
  }
  void wait_staged() override { UNET_CUDA_CHECK(cudaEventSynchronize(copied_)); }
  void zero(void* dst, int64_t bytes) override {
    if (bytes) UNET_CUDA_CHECK(cudaMemsetAsync(dst, 0, size_t(bytes), stream_));
  }
  void synchronize() override { UNET_CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  int64_t free_bytes() const override {
    size_t free = 0, total = 0;
    UNET_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    return static_cast<int64_t>(free);
  }
  int64_t peak_bytes() const override { return peak_; }

  // cuDNN's descriptors hold 32-bit sizes and strides.
  int64_t max_tensor_elements() const override { return INT32_MAX; }
  DType activation_type() const override { return type_; }

  cudnnContext* cudnn() const override { return cudnn_; }
  cublasContext* cublas() const override { return cublas_; }
  bool tf32() const override { return tf32_; }
  double* scratch(int64_t doubles) override {
    if (doubles > scratch_doubles_ || !scratch_) {
      synchronize();           // the old scratch may still be in use by queued ops
      ++graphs_.generation;    // and captured graphs name it
      scratch_.reset();
      scratch_doubles_ = std::max<int64_t>(doubles, 1);
      scratch_ = allocate(scratch_doubles_ * int64_t(sizeof(double)));
    }
    return static_cast<double*>(scratch_.get());
  }

 private:
  static constexpr int64_t kCublasWorkspace = int64_t(32) << 20;  // what PyTorch gives cuBLAS on Hopper

  int device_;
  DType type_;  // of the activations
  bool tf32_;
  Memory cublas_workspace_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cudaStream_t copy_stream_ = nullptr;  // batches' uploads
  cudaEvent_t copied_ = nullptr;  // the last stage() done
  cudaEvent_t fence_ = nullptr;   // the compute stream at the last begin_batch()
  bool fenced_ = false;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  int64_t held_ = 0, peak_ = 0;
  Memory scratch_;
  int64_t scratch_doubles_ = 0;
};

}  // namespace

std::shared_ptr<Backend> cuda_backend(int device, Precision precision, bool graphs) {
  const CudaPresence gpus = cuda_presence();
  const int count = gpus.count;
  if (!gpus.error.empty()) throw std::runtime_error("--gpus: " + gpus.error);
  if (count == 0)
    throw std::runtime_error("--gpus: " + gpus.absent +
                             " (or CUDA_VISIBLE_DEVICES empty); train on the CPU with --gpus 0, or run on a GPU node");
  if (device >= count)
    throw std::runtime_error("--gpus: GPU " + std::to_string(device) + " asked for, " + std::to_string(count) +
                             " visible");
  return std::make_shared<CudaBackend>(device, precision, graphs);
}

}  // namespace unet
