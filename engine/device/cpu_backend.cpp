// The CPU backend: host memory, aligned for vector loads, within an optional
// bound; the ops run the CPU kernels of kernels/ (ops.h).
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <new>

#include "engine/device/backend.h"
#include "kernels/conv_dnnl.h"
#ifdef UNET_CUDA
#include "engine/device/device_buffer.h"
#endif

namespace unet {
namespace {

// The memory the kernel says a new allocation can get without swapping
// (MemAvailable), 0 where it cannot be read.
int64_t available_memory() {
  std::ifstream f("/proc/meminfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("MemAvailable:", 0) == 0) return std::stoll(line.substr(13)) * 1024;  // kB
  return 0;
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) return "cpu: " + line.substr(line.find(':') + 2);
  return "cpu";
}

// UNET_CPU_CONV: whether the im2col reference replaces oneDNN.
bool reference_convolutions_asked() {
  const char* v = std::getenv("UNET_CPU_CONV");
  const std::string value = v ? v : "";
  if (value.empty() || value == "onednn") return false;
  if (value == "im2col") return true;
  throw std::invalid_argument("UNET_CPU_CONV=" + value +
                              ": expected onednn (the default: oneDNN's kernels) or im2col (the im2col + OpenBLAS "
                              "reference)");
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(int64_t limit, bool separate, DType conv_type)
      : limit_(limit), separate_(separate), conv_type_(conv_type), reference_(reference_convolutions_asked()) {
    if (conv_type_ == DType::f16)
      throw std::invalid_argument("--precision fp16: the CPU has no fp16 convolutions; use --precision bf16 or fp32");
    if (conv_type_ == DType::bf16 && reference_)
      throw std::invalid_argument("--precision bf16 with UNET_CPU_CONV=im2col: the im2col reference multiplies in "
                                  "fp32; unset UNET_CPU_CONV for oneDNN's bf16 convolutions");
    if (conv_type_ == DType::bf16 && !cpu_has_bf16_convolutions())
      throw std::invalid_argument("--precision bf16: oneDNN has no bf16 convolutions for this CPU (" + cpu_model() +
                                  "; they need AVX-512); train in fp32 (--precision fp32)");
  }
  std::string name() const override { return cpu_model(); }
  bool is_cuda() const override { return false; }
  bool separate_memory() const override { return separate_; }
  Stream stream() const override { return nullptr; }

  Memory allocate(int64_t bytes) override {
    if (bytes > free_bytes())
      throw OutOfMemory("cpu: cannot allocate " + std::to_string(bytes >> 20) + " MiB within the memory limit (" +
                        std::to_string(free_bytes() >> 20) + " MiB free)");
    // 64-byte alignment for vector loads; aligned_alloc wants a multiple of it.
    const size_t size = static_cast<size_t>((std::max<int64_t>(bytes, 1) + 63) / 64 * 64);
    void* p = std::aligned_alloc(64, size);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, size);
    held_ += bytes;
    peak_ = std::max(peak_, held_);
    return Memory(p, [this, bytes](void* q) {
      std::free(q);
      held_ -= bytes;
    });
  }
  void upload(void* dst, const void* host, int64_t bytes) override {
    if (bytes) std::memcpy(dst, host, static_cast<size_t>(bytes));
  }
  void download(void* host, const void* src, int64_t bytes) override {
    if (bytes) std::memcpy(host, src, static_cast<size_t>(bytes));
  }
  void zero(void* dst, int64_t bytes) override { std::memset(dst, 0, static_cast<size_t>(bytes)); }
  void synchronize() override {}
  int64_t free_bytes() const override {
    return limit_ > 0 ? limit_ - held_ : std::numeric_limits<int64_t>::max();
  }
  int64_t peak_bytes() const override { return peak_; }

  int64_t max_tensor_elements() const override { return std::numeric_limits<int64_t>::max(); }
  DType activation_type() const override { return DType::f32; }
  DType conv_type() const override { return conv_type_; }
  bool reference_convolutions() const override { return reference_; }

 private:
  int64_t limit_, held_ = 0, peak_ = 0;
  bool separate_;
  DType conv_type_;
  bool reference_;
};

}  // namespace

std::shared_ptr<Backend> cpu_backend(int64_t memory_limit, bool separate_memory, DType conv_type) {
  return std::make_shared<CpuBackend>(memory_limit, separate_memory, conv_type);
}

Precision parse_precision(const std::string& text) { return choose(kPrecisions, text, "--precision"); }

DType storage_type(Precision p) {
  return p == Precision::bf16 ? DType::bf16 : p == Precision::fp16 ? DType::f16 : DType::f32;
}

std::shared_ptr<Backend> make_backend(int gpus, Precision precision, int local_rank, bool graphs) {
  if (gpus < 0) throw std::invalid_argument("--gpus " + std::to_string(gpus) + ": expected 0 (the CPU) or 1");
  // A batch larger than the machine's memory is refused with the batch that fits.
  if (gpus == 0) return cpu_backend(available_memory(), false, storage_type(precision));
  if (gpus > 1)
    throw std::invalid_argument("--gpus " + std::to_string(gpus) + ": one process drives one GPU; for several, train "
                                "one rank per GPU (unet train --gpus N starts them, or srun --ntasks-per-node=GPUS "
                                "with --gpus 1)");
#ifdef UNET_CUDA
  // Ranks on one node share its GPUs unless the launcher gave each its own
  // (CUDA_VISIBLE_DEVICES, --gpus-per-task): local rank r takes visible GPU r.
  const int count = cuda_device_count();
  const int device = count > 0 ? local_rank % count : 0;
#else
  const int device = local_rank;  // this build's cuda_backend refuses, saying why
#endif
  return cuda_backend(device, precision, graphs);
}

#ifndef UNET_CUDA
std::shared_ptr<Backend> cuda_backend(int, Precision, bool) {
  throw std::runtime_error("--gpus: this unet was built without the CUDA backend (no nvcc at build time); rebuild "
                           "where the CUDA toolkit is installed, or train on the CPU with --gpus 0");
}
#endif

}  // namespace unet
