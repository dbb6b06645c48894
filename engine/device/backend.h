// Where a U-Net's buffers live and its ops run: the CPU backend (host memory,
// OpenMP threads, OpenBLAS) or the CUDA backend (one GPU: device memory, a
// compute stream and a copy stream, cuDNN and cuBLAS handles bound to it). A
// backend is a small device: memory, copies, batch staging, synchronization,
// handles, the reductions' scratch, its convolution plans and the state of its
// CUDA Graphs. The ops themselves are functions over it (ops.h), each
// dispatched once to the CPU or the CUDA kernel, so that one call list (UNet,
// the train step, the sliding window, `unet bench`) serves both, and the CPU
// tests exercise the call list the GPU runs.
//
// Contract
//   Every pointer an op takes is the backend's memory (allocate()); host data
//   moves only through upload() and download(), which take explicit sizes.
//   Ops run in call order. Calls that return a host value (download) wait for
//   what they read; the others may return before the device has finished (the
//   CUDA backend's stream).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/base/choice.h"
#include "kernels/base/tensor.h"
#include "kernels/conv.h"

struct cudnnContext;   // cudnnHandle_t without the cuDNN headers
struct cublasContext;  // cublasHandle_t without the cuBLAS headers

namespace unet {

class ConvCudnn;
class ConvDnnl;

// One convolution layer's plan (ops::plan_conv): the layer, what its calls
// need as workspace, and its primitives: cuDNN's chosen algorithms on a GPU,
// oneDNN's on the CPU (neither for the CPU's im2col reference).
struct ConvPlan {
  std::string key;  // conv_key(): twins share a plan (their calls run one at a time)
  ConvSpec spec;
  int64_t weights = 0;          // the layer's weight count
  int64_t workspace_bytes = 0;  // under mixed precision with its 16-bit weights and weight gradient
  std::shared_ptr<ConvCudnn> cudnn;  // the CUDA backend's
  std::shared_ptr<ConvDnnl> dnnl;    // the CPU backend's
};

// What the CUDA Graphs on one backend share: whether graphs are on (a capture
// that fails turns them off), whether one is being captured (a graph run
// inside another's ops is part of the outer one), a generation that moves
// whenever buffers a graph may name go (every graph then captures again), and
// the replays so far.
struct CudaGraphState {
  bool enabled = false;
  bool capturing = false;
  int64_t generation = 0;
  int64_t replays = 0;
};

// How the CUDA backend computes (`--precision`). fp32: strict IEEE single
// precision; tf32: TF32 tensor cores for the convolutions and GEMMs (Ampere and
// later). bf16, fp16: mixed precision: activations and their gradients in 16
// bits, every sum and statistic in fp32, fp32 master weights (16-bit copies for
// cuDNN and cuBLAS) and fp32 gradients; fp16 needs the trainer's loss scaling
// (LossScaler). The CPU keeps every tensor in fp32: it accepts fp32 and tf32
// (as fp32), and bf16, where its convolutions multiply in bf16 (oneDNN's
// AVX-512 BF16 and AMX kernels, conv_dnnl.h); it refuses fp16.
enum class Precision { fp32, tf32, bf16, fp16 };
inline constexpr Choice<Precision> kPrecisions[] = {
    {"fp32", Precision::fp32, "strict single precision"},
    {"tf32", Precision::tf32, "TF32 tensor cores, Ampere and later"},
    {"bf16", Precision::bf16, "bf16 activations, fp32 weights and sums"},
    {"fp16", Precision::fp16, "fp16 activations, fp32 weights and sums, dynamic loss scaling"}};
Precision parse_precision(const std::string& text);  // throws std::invalid_argument naming the choices
DType storage_type(Precision p);  // of the activations: bf16, f16, else f32

class Backend {
 public:
  using Memory = std::unique_ptr<void, std::function<void(void*)>>;

  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu: <model>" or "cuda:0 <device name>"
  virtual bool is_cuda() const = 0;
  // Whether this backend's memory is apart from the host's (a GPU's): the model
  // then keeps host copies of its parameters and stages every batch.
  virtual bool separate_memory() const = 0;
  virtual Stream stream() const = 0;  // the CUDA stream the ops queue on (null on the CPU): for NCCL

  // Memory, zeroed. Throws OutOfMemory (below) when the device cannot hold it.
  virtual Memory allocate(int64_t bytes) = 0;
  virtual void upload(void* dst, const void* host, int64_t bytes) = 0;
  virtual void download(void* host, const void* src, int64_t bytes) = 0;  // waits for the data
  // A batch's upload, which may run beside the ops already queued (the CUDA
  // backend's copy stream): the ops queued after it wait for it. A batch's
  // stages follow begin_batch(); they wait only for the ops queued before the
  // previous begin_batch() (so that a caller alternating two buffers never
  // overwrites one a queued op still reads). `host` stays untouched until
  // wait_staged() or a call that returns a host value has returned.
  virtual void begin_batch() {}
  virtual void stage(void* dst, const void* host, int64_t bytes) { upload(dst, host, bytes); }
  virtual void wait_staged() {}
  virtual void zero(void* dst, int64_t bytes) = 0;
  virtual void synchronize() = 0;                 // waits for every queued op
  virtual int64_t free_bytes() const = 0;         // what allocate() can still give (CPU: INT64_MAX)
  virtual int64_t peak_bytes() const = 0;         // the most this backend's allocations held at once
  virtual int64_t max_tensor_elements() const = 0;  // the largest tensor one op call may address
  // The element type the activation tensors given to the ops must have: f32,
  // or under mixed precision bf16 or f16. Weights, biases, norm parameters and
  // every gradient of them are fp32 whatever it is.
  virtual DType activation_type() const = 0;

  // The cuDNN and cuBLAS handles bound to stream(), and whether TF32 was asked
  // for (the CPU: none). For the ops that call them (ops.h).
  virtual cudnnContext* cudnn() const { return nullptr; }
  // The CPU's convolutions: through oneDNN, multiplying in conv_type() (f32,
  // or bf16 under --precision bf16), or where reference_convolutions() the
  // im2col + OpenBLAS reference (UNET_CPU_CONV=im2col, for comparisons).
  virtual DType conv_type() const { return activation_type(); }
  virtual bool reference_convolutions() const { return false; }
  virtual cublasContext* cublas() const { return nullptr; }
  virtual bool tf32() const { return false; }
  // The reductions' scratch (the norms', the loss's, the gradient norm's), of
  // at least `doubles`: the CUDA backend's, grown when asked for more (after
  // the queued ops, invalidating the captured graphs that name the old one);
  // null on the CPU, whose reductions keep their sums on the stack.
  virtual double* scratch(int64_t /*doubles*/) { return nullptr; }

  // The convolution plans ops::plan_conv made on this backend, kept for its
  // lifetime; an op takes a plan's index.
  std::vector<ConvPlan>& conv_plans() { return conv_plans_; }
  // Whether passes may run as CUDA Graphs, and the state every CudaGraph on
  // this backend shares (cuda_graph.h).
  CudaGraphState& graphs() { return graphs_; }
  int64_t graph_replays() const { return graphs_.replays; }  // passes run from a captured graph so far

 protected:
  std::vector<ConvPlan> conv_plans_;
  CudaGraphState graphs_;
};

// A plan that does not fit the device: what it needs and what is free.
struct OutOfMemory : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// memory_limit > 0 bounds what the CPU backend allocates (its free_bytes()
// counts down from it), so that the out-of-memory path can be tested and a CPU
// run kept within a budget; 0: no bound. separate_memory: the CPU ops on memory
// the model treats as a GPU's (host copies, staged batches, explicit uploads
// and downloads), so that the CPU tests check every copy the GPU path makes.
// conv_type: f32, or bf16 (the convolutions multiply in bf16). The
// environment's UNET_CPU_CONV (onednn, the default, or im2col) picks the
// convolutions; any other value is refused (std::invalid_argument).
std::shared_ptr<Backend> cpu_backend(int64_t memory_limit = 0, bool separate_memory = false,
                                     DType conv_type = DType::f32);
// One GPU (the CUDA device `device`, after CUDA_VISIBLE_DEVICES); `graphs`:
// capture the forward and backward passes as CUDA Graphs. Throws
// std::runtime_error when this build has no CUDA backend or the machine no GPU.
std::shared_ptr<Backend> cuda_backend(int device, Precision precision, bool graphs = true);
// The CPU for gpus == 0 (bounded by the memory available when it starts);
// for gpus == 1 the visible GPU numbered local_rank
// (modulo the visible GPUs). More is refused: one process drives one GPU, and
// several GPUs are several ranks (README "Data parallel").
std::shared_ptr<Backend> make_backend(int gpus, Precision precision, int local_rank = 0, bool graphs = true);

}  // namespace unet
