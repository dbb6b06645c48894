// The CUDA backend: one GPU, one stream, cuDNN and cuBLAS handles bound to it,
// the ops of kernels/*.cu. Device memory comes from cudaMalloc when the net is
// planned; a step allocates nothing (reserve() sizes the reduction scratch).
#include <algorithm>
#include <cstdio>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/device/backend.h"
#include "kernels/base/cuda_check.h"
#include "engine/device/device_buffer.h"
#include "kernels/convert.h"
#include "kernels/metrics.h"
#include "kernels/upconv.h"

namespace unet {
namespace {

std::string mib(int64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }
int64_t aligned(int64_t bytes) { return (bytes + 255) / 256 * 256; }

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, Precision precision, bool graphs)
      : device_(device), type_(storage_type(precision)), tf32_(precision == Precision::tf32), graphs_(graphs) {
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
    drop_captures();
    convs_.clear();
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

  // One plan per distinct layer (twins share it: the calls run one at a time),
  // so that planning again for the same shapes adds nothing.
  int plan_conv(const Shape& in, int64_t out_channels, const ConvSpec& spec, ConvStrides s) override {
    const std::string key = conv_key(in, out_channels, spec, s);
    if (auto it = conv_ids_.find(key); it != conv_ids_.end()) return it->second;
    convs_.push_back(std::make_unique<ConvCudnn>(cudnn_, in, out_channels, spec, tf32_, false, s, type_));
    int64_t weights = out_channels * in.c;
    for (int d = 0; d < in.dims; ++d) weights *= spec.kernel;
    conv_weights_.push_back(weights);
    return conv_ids_[key] = static_cast<int>(convs_.size() - 1);
  }
  // Under mixed precision the workspace also holds the layer's 16-bit weights
  // and weight gradient, ahead of cuDNN's own.
  int64_t conv_workspace_bytes(int plan) const override {
    return int64_t(convs_.at(plan)->workspace_bytes()) + 2 * half_bytes(conv_weights_.at(plan));
  }
  void conv_forward(int plan, const Tensor& x, const float* w, const float* bias, const Tensor& y,
                    void* workspace) override {
    const Operands o = operands(w, conv_weights_[plan], workspace);
    convs_[plan]->forward(x, o.w, bias, y, o.rest, stream_);
  }
  void conv_bias_act_forward(int plan, const Tensor& x, const float* w, const float* bias, const Tensor& y,
                             ActivationSpec act, void* workspace) override {
    const Operands o = operands(w, conv_weights_[plan], workspace);
    if (act.kind == Activation::relu && bias && convs_[plan]->forward_bias_relu(x, o.w, bias, y, o.rest, stream_))
      return;
    convs_[plan]->forward(x, o.w, nullptr, y, o.rest, stream_);
    bias_act_forward_cuda(y, bias, act, stream_);
  }
  void conv_backward(int plan, const Tensor& x, const float* w, const Tensor& dy, const Tensor& dx, float* dw,
                     float* dbias, GradMode mode, void* workspace) override {
    const int64_t count = conv_weights_[plan];
    const Operands o = operands(w, count, workspace);
    convs_[plan]->backward(x, o.w, dy, dx, o.dw ? o.dw : dw, dbias, mode, o.rest, stream_);
    if (o.dw) convert_cuda(o.dw, type_, dw, DType::f32, count, GradMode::accumulate, stream_);
  }

  int64_t upconv_workspace_bytes(const Shape& in, int64_t out_channels) const override {
    return aligned(upconv_workspace_floats_cuda(in, out_channels) * int64_t(sizeof(float))) +
           half_bytes(upconv_weight_count(in.dims, in.c, out_channels));
  }
  void upconv_forward(const Tensor& x, const float* w, const float* bias, const Tensor& y, void* workspace) override {
    upconv_forward_cuda(cublas_, x, upconv_weights(x.shape, y.shape.c, w, workspace), bias, y,
                        static_cast<float*>(workspace), stream_);
  }
  void upconv_backward(const Tensor& x, const float* w, const Tensor& dy, const Tensor& dx, float* dw, float* dbias,
                       GradMode mode, void* workspace) override {
    upconv_backward_cuda(cublas_, x, upconv_weights(x.shape, dy.shape.c, w, workspace), dy, dx, dw, dbias, mode,
                         static_cast<float*>(workspace), stream_);
  }


  void norm_forward_train(const Tensor& x, const Tensor& y, const float* gamma, const float* beta, float* mean,
                          float* invstd, float* running_mean, float* running_var, const NormSpec& spec,
                          const NormSumsReducer& reduce) override {
    no_sync_batchnorm(reduce);
    norm_forward_train_cuda(x, y, gamma, beta, mean, invstd, running_mean, running_var, spec, scratch(), stream_);
  }
  void norm_forward_infer(const Tensor& x, const Tensor& y, const float* gamma, const float* beta,
                          const float* running_mean, const float* running_var, const NormSpec& spec) override {
    norm_forward_infer_cuda(x, y, gamma, beta, running_mean, running_var, spec, scratch(), stream_);
  }
  void norm_backward(const Tensor& x, const Tensor& dy, const Tensor& dx, const float* gamma, const float* mean,
                     const float* invstd, float* dgamma, float* dbeta, const NormSpec& spec,
                     const NormSumsReducer& reduce) override {
    no_sync_batchnorm(reduce);
    norm_backward_cuda(x, dy, dx, gamma, mean, invstd, dgamma, dbeta, spec, scratch(), stream_);
  }


  void reserve(const Shape& logits, int64_t norm_groups) override {
    const int64_t doubles =
        std::max({3 * norm_groups, loss_workspace_doubles(logits), int64_t(kGradientNormBlocks + 1)});
    if (doubles <= scratch_doubles_) return;
    synchronize();    // the old scratch may still be in use by queued ops
    drop_captures();  // and captured passes name it
    scratch_.reset();
    scratch_ = allocate(doubles * int64_t(sizeof(double)));
    scratch_doubles_ = doubles;
  }
  void step_loss(const Tensor& logits, const int32_t* labels, const Tensor& dlogits, const LossSpec& spec,
                 const LossSumsReducer& reduce, const StepInputs* in, StepOutputs* out) override {
    if (loss_workspace_doubles(logits.shape) > scratch_doubles_) reserve(logits.shape, 0);
    loss_step_cuda(logits, labels, dlogits, spec, in, out, scratch(), stream_, reduce);
  }
  void step_update(float* params, const float* grads, float* m, float* v, int64_t count, const ParamRanges& ranges,
                   const OptimizerSpec& spec, const StepInputs* in, StepOutputs* out) override {
    step_update_cuda(params, grads, m, v, count, ranges, spec, in, out, scratch(), stream_);
  }

  void run_captured(const std::string& key, const std::function<void()>& ops) override {
    if (!graphs_ || capturing_) return ops();  // inside a capture: part of the outer graph
    if (auto it = graphs_cache_.find(key); it != graphs_cache_.end()) {
      UNET_CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
      ++replays_;
      return;
    }
    // The first call runs eagerly: cuDNN's and cuBLAS's first-use work (module
    // loading, their own setup) happens outside the capture.
    if (warmed_.insert(key).second) return ops();
    // Thread-local: the loader's threads may call CUDA meanwhile (page-locked buffers).
    UNET_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    std::string failure;
    capturing_ = true;
    try {
      ops();  // recorded, not run
    } catch (const std::exception& e) {
      failure = e.what();
    } catch (...) {
      failure = "an exception";
    }
    capturing_ = false;
    cudaGraph_t graph = nullptr;
    cudaError_t err = cudaStreamEndCapture(stream_, &graph);
    cudaGraphExec_t exec = nullptr;
    if (failure.empty() && err == cudaSuccess) err = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (failure.empty() && err != cudaSuccess) failure = cudaGetErrorString(err);
    if (!failure.empty()) {
      cudaGetLastError();  // capture errors are not sticky: clear them
      // Run it eagerly, graphs off (the passes inside it would try their own
      // captures); an error of the ops themselves throws from here, and then
      // graphs go back on: only ops that run but cannot be captured turn them off.
      graphs_ = false;
      try {
        ops();
      } catch (...) {
        graphs_ = true;
        throw;
      }
      std::fprintf(stderr, "unet: CUDA Graph capture failed (%s); running the passes without graphs\n",
                   failure.c_str());
      return;
    }
    graphs_cache_[key] = exec;
    UNET_CUDA_CHECK(cudaGraphLaunch(exec, stream_));
    ++replays_;
  }
  void drop_captures() override {
    for (auto& [key, exec] : graphs_cache_) UNET_CUDA_CHECK_NOTHROW(cudaGraphExecDestroy(exec));
    graphs_cache_.clear();
    warmed_.clear();
  }
  int64_t graph_replays() const override { return replays_; }

 private:
  double* scratch() {
    if (!scratch_) reserve(Shape{}, 0);
    return static_cast<double*>(scratch_.get());
  }
  // Mixed precision: bytes of a 16-bit copy of `count` weights (0 in fp32).
  int64_t half_bytes(int64_t count) const { return type_ == DType::f32 ? 0 : aligned(count * 2); }
  // What a convolution multiplies: the fp32 weights, or their 16-bit copy made
  // now at the workspace's start, beside room for the 16-bit weight gradient.
  struct Operands {
    const void* w;
    void* dw;    // null in fp32: cuDNN accumulates into the fp32 gradient itself
    void* rest;  // cuDNN's workspace
  };
  Operands operands(const float* w, int64_t count, void* workspace) {
    if (type_ == DType::f32) return {w, nullptr, workspace};
    char* base = static_cast<char*>(workspace);
    convert_cuda(w, DType::f32, base, type_, count, GradMode::overwrite, stream_);
    return {base, base + half_bytes(count), base + 2 * half_bytes(count)};
  }
  // The up-convolution's weights in the activations' type (after its product in the workspace).
  const void* upconv_weights(const Shape& in, int64_t co, const float* w, void* workspace) {
    if (type_ == DType::f32) return w;
    char* copy = static_cast<char*>(workspace) + aligned(upconv_workspace_floats_cuda(in, co) * int64_t(sizeof(float)));
    convert_cuda(w, DType::f32, copy, type_, upconv_weight_count(in.dims, in.c, co), GradMode::overwrite, stream_);
    return copy;
  }
  static void no_sync_batchnorm(const NormSumsReducer& reduce) {
    if (reduce) throw std::invalid_argument("--sync-batchnorm: the CUDA backend has no synchronized batch norm yet");
  }

  static constexpr int64_t kCublasWorkspace = int64_t(32) << 20;  // what PyTorch gives cuBLAS on Hopper

  int device_;
  DType type_;  // of the activations
  bool tf32_, graphs_;
  bool capturing_ = false;  // inside run_captured's capture
  std::map<std::string, cudaGraphExec_t> graphs_cache_;
  std::set<std::string> warmed_;  // keys run once eagerly
  int64_t replays_ = 0;
  Memory cublas_workspace_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cudaStream_t copy_stream_ = nullptr;  // batches' uploads
  cudaEvent_t copied_ = nullptr;  // the last stage() done
  cudaEvent_t fence_ = nullptr;   // the compute stream at the last begin_batch()
  bool fenced_ = false;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::vector<std::unique_ptr<ConvCudnn>> convs_;
  std::vector<int64_t> conv_weights_;  // per plan
  std::map<std::string, int> conv_ids_;
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
