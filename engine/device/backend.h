// Where a U-Net's buffers live and its ops run: the CPU backend (host memory,
// OpenMP threads, OpenBLAS) or the CUDA backend (one GPU: device memory, cuDNN,
// cuBLAS and our kernels queued on one stream). UNet, the trainer, the sliding
// window and `unet bench` call the ops through this interface, so one call list
// serves both, and the CPU tests exercise the same call list the GPU runs.
//
// Contract
//   Every pointer an op takes is the backend's memory (allocate()); host data
//   moves only through upload() and download(), which take explicit sizes.
//   Ops run in call order. Calls that return a host value (download) wait for
//   what they read; the others may return before the device has finished (the
//   CUDA backend's stream).
//   Workspaces: the caller passes one of at least the *_workspace_bytes() the
//   backend asked for; reserve() sizes the backend's own reduction scratch once,
//   so that a step allocates nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "kernels/base/choice.h"
#include "kernels/base/tensor.h"
#include "kernels/activation.h"
#include "kernels/conv.h"
#include "kernels/dropout.h"
#include "kernels/loss.h"
#include "kernels/norm.h"
#include "kernels/optimizer.h"

namespace unet {

// How the CUDA backend computes (`--precision`). fp32: strict IEEE single
// precision; tf32: TF32 tensor cores for the convolutions and GEMMs (Ampere and
// later). bf16, fp16: mixed precision: activations and their gradients in 16
// bits, every sum and statistic in fp32, fp32 master weights (16-bit copies for
// cuDNN and cuBLAS) and fp32 gradients; fp16 needs the trainer's loss scaling
// (LossScaler). The CPU computes fp32: it accepts fp32 and tf32 and refuses
// the 16-bit precisions.
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

  // Convolutions: one plan per layer shape, made when the net is planned (the
  // CUDA backend chooses its cuDNN algorithms there); ops take the plan's id.
  virtual int plan_conv(const Shape& in, int64_t out_channels, const ConvSpec& spec, ConvStrides strides) = 0;
  virtual int64_t conv_workspace_bytes(int plan) const = 0;
  virtual void conv_forward(int plan, const Tensor& x, const float* w, const float* bias, const Tensor& y,
                            void* workspace) = 0;
  // y = act(conv(x) + bias): one fused call where the backend can (the CUDA
  // backend, for ReLU, when cuDNN's chosen algorithm allows it), else the
  // convolution and then bias_act_forward.
  virtual void conv_bias_act_forward(int plan, const Tensor& x, const float* w, const float* bias, const Tensor& y,
                                     ActivationSpec act, void* workspace) = 0;
  virtual void conv_backward(int plan, const Tensor& x, const float* w, const Tensor& dy, const Tensor& dx, float* dw,
                             float* dbias, GradMode mode, void* workspace) = 0;

  virtual int64_t upconv_workspace_bytes(const Shape& in, int64_t out_channels) const = 0;
  virtual void upconv_forward(const Tensor& x, const float* w, const float* bias, const Tensor& y,
                              void* workspace) = 0;
  virtual void upconv_backward(const Tensor& x, const float* w, const Tensor& dy, const Tensor& dx, float* dw,
                               float* dbias, GradMode mode, void* workspace) = 0;


  // Synchronized batch norm (a non-null reducer) is the CPU backend's alone.
  virtual void norm_forward_train(const Tensor& x, const Tensor& y, const float* gamma, const float* beta, float* mean,
                                  float* invstd, float* running_mean, float* running_var, const NormSpec& spec,
                                  const NormSumsReducer& reduce) = 0;
  virtual void norm_forward_infer(const Tensor& x, const Tensor& y, const float* gamma, const float* beta,
                                  const float* running_mean, const float* running_var, const NormSpec& spec) = 0;
  virtual void norm_backward(const Tensor& x, const Tensor& dy, const Tensor& dx, const float* gamma,
                             const float* mean, const float* invstd, float* dgamma, float* dbeta, const NormSpec& spec,
                             const NormSumsReducer& reduce) = 0;


  // The scratch the reductions below and the norms need, for logits of this
  // shape and norms of at most `norm_groups` groups.
  virtual void reserve(const Shape& logits, int64_t norm_groups) = 0;
  // A training step's loss and update, on the step's scalars in this backend's
  // memory (step.h), so that nothing in the step waits for the host:
  // step_loss writes dlogits (times in->loss_scale) and adds loss /
  // in->accumulate to out->loss. A label outside the classes: the CUDA backend
  // records it in out (the step is then not taken), the CPU throws at once
  // (bad_label_message). step_update: the squared norm of grads[0, count) and
  // the factor into out (step_factor), then, unless the factor is 0, the
  // optimizer over each range of params, grads, m and v.
  virtual void step_loss(const Tensor& logits, const int32_t* labels, const Tensor& dlogits, const LossSpec& spec,
                         const LossSumsReducer& reduce, const StepInputs* in, StepOutputs* out) = 0;
  virtual void step_update(float* params, const float* grads, float* m, float* v, int64_t count,
                           const ParamRanges& ranges, const OptimizerSpec& spec, const StepInputs* in,
                           StepOutputs* out) = 0;

  // A fixed sequence of ops on fixed buffers (a pass of a planned net, or a
  // whole training step), run as a CUDA Graph under `key`: run eagerly the
  // first time, captured the second, replayed after: one launch instead of
  // hundreds. A run_captured inside another's ops is part of the outer one.
  // The CPU runs `ops`. A capture that fails is reported once and the backend
  // runs eagerly from then on. drop_captures() forgets them all (the buffers
  // they name are gone).
  virtual void run_captured(const std::string& /*key*/, const std::function<void()>& ops) { ops(); }
  virtual void drop_captures() {}
  virtual int64_t graph_replays() const { return 0; }  // passes run from a captured graph so far
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
std::shared_ptr<Backend> cpu_backend(int64_t memory_limit = 0, bool separate_memory = false);
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
