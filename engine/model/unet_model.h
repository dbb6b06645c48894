// The U-Net: parameters, a planned activation arena, and forward and backward
// as explicit call lists (no autograd). See unet_config.h for the layers.
//
// Memory: one parameter buffer and one gradient buffer
// in the same layout (param_table() names every tensor in it), a state buffer
// for the norms' running statistics, and for a given input shape one arena that
// plan() lays out once: every activation backward needs, the decoders'
// concatenation buffers (the encoder writes its skip output straight into the
// first half, the up-convolution into the second: zero-copy with "same"
// padding), their gradients, two scratch gradient buffers and the convolution
// workspace. forward() and backward() allocate nothing.
//
// Backend (backend.h): the buffers live where the model's backend keeps them
// and every op runs there; the call lists below are the same for the CPU and
// the GPU. params(), grads() and state() are host copies: on the CPU they are
// the buffers the ops use; where the backend's memory is separate (a GPU) they
// are updated by copy_to_host() (and pushed back by copy_to_device() after the
// host changed them). The device_* accessors give the backend's own buffers.
//
// Contract
//   forward:  reads the input and the parameters; overwrites the arena; returns
//             a view of the logits. training: batch statistics (updating the
//             running ones) and dropout keyed on `step`; otherwise running
//             statistics and no dropout.
//   backward: reads the arena left by forward(training = true) and dlogits();
//             accumulates (+=) into grads(). The caller zeroes grads() between
//             optimizer steps (gradient accumulation is leaving them).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/device/backend.h"
#include "engine/device/cuda_graph.h"
#include "kernels/base/tensor.h"
#include "engine/model/unet_config.h"
#include "kernels/subsample.h"

namespace unet {

struct ParamInfo {
  std::string name;            // "enc0.conv1.weight", "up2.bias", "head.weight", ...
  int64_t offset = 0, count = 0;
  std::vector<int64_t> shape;  // PyTorch's layout for the tensor
};

// One row of `unet summary`.
struct LayerInfo {
  std::string name, kind;
  Shape output;
  int64_t params = 0;
  double forward_macs = 0;
};

// What a data-parallel rank hands the model: where its batch starts in the
// global batch (dropout's masks follow it); grads_ready(first), called as
// backward() finishes the parameter gradients from `first` to the end (in
// descending offset order), so that their all-reduce can start while it goes
// on; and synchronized batch norm's reduction of the training statistics.
struct ParallelHooks {
  int64_t first_sample = 0;
  std::function<void(int64_t first)> grads_ready;
  NormSumsReducer norm_sums;
};

class UNet {
 public:
  // Lays out and He-initializes the parameters, on the CPU backend.
  explicit UNet(const UNetConfig& config);
  ~UNet();
  UNet(const UNet&) = delete;  // the buffers are views of one another
  UNet& operator=(const UNet&) = delete;

  // Moves the model to another backend: its parameters and state go along;
  // the arena is dropped (plan() again).
  void to(std::shared_ptr<Backend> backend);
  Backend& backend() const { return *backend_; }

  const UNetConfig& config() const { return config_; }
  int64_t parameter_count() const { return static_cast<int64_t>(params_.size()); }
  float* params() { return params_.data(); }
  float* grads() { return grads_.data(); }
  const float* params() const { return params_.data(); }
  const float* grads() const { return grads_.data(); }
  std::vector<float>& state() { return state_; }  // running mean and variance of batch norms
  const std::vector<float>& state() const { return state_; }
  const std::vector<ParamInfo>& param_table() const { return table_; }
  void zero_grads();

  float* device_params() { return p_; }
  float* device_grads() { return g_; }
  float* device_state() { return s_; }
  // Host copies <-> the backend's buffers (parameters, state; grads on demand).
  // No-ops on the CPU, where they are the same memory.
  void copy_to_host() const;
  void copy_to_device();
  void copy_grads_to_host();

  // Lays out the arena for inputs of this shape (N, in_channels, [D,] H, W).
  // Throws std::invalid_argument when the shape cannot pass through the net
  // (sizes that do not halve evenly, too small for "valid" convolutions), saying
  // which level fails and which sizes would work.
  void plan(const Shape& input);
  // What plan(input) would allocate (its arena_bytes()), laid out without
  // allocating; drops the current plan. Throws as plan() does on a shape that
  // cannot pass. The planner of `unet plan` sizes patches and batches by it.
  int64_t plan_bytes(const Shape& input);
  const Shape& input_shape() const { return input_; }
  Shape output_shape() const;
  // What plan() allocated: activations, gradients, pooling indices, workspace, staging.
  int64_t arena_bytes() const { return arena_bytes_; }

  // A batch from host memory into the backend's (the CPU: the same memory, no
  // copy): the input forward() and backward() take, and the labels the loss
  // takes (staged after the input). On a GPU the copies run on their own stream
  // beside the ops still queued, into one of two buffer pairs taken in turn,
  // once the ops queued before the previous batch's were done: a batch may be
  // staged while the previous one's passes run. The host buffers stay read
  // until Backend::wait_staged() or the next host value.
  Tensor stage_input(const float* host);
  const int32_t* stage_labels(const int32_t* host);

  Tensor forward(const Tensor& input, bool training, uint64_t step = 0);
  Tensor dlogits();  // where the loss writes its gradient

  // Deep supervision (config().deep_supervision): the upper decoder levels'
  // logits, which forward(training = true) computes beside the full-resolution
  // ones and whose gradients (dlogits) backward() adds in, each with its share
  // of the loss; the full-resolution logits' share is head_weight() (1 without).
  struct DeepOutput {
    Tensor logits, dlogits;
    const int32_t* labels;  // the batch's labels at this level's grid
    float weight;
  };
  // Subsamples `labels` (the batch's, staged) to each level's grid, into the arena.
  std::vector<DeepOutput> deep_outputs(const int32_t* labels);
  float head_weight() const { return config_.loss_weights()[0]; }
  void backward(const Tensor& input);
  // The logits of the last forward() in host memory (a copy on a GPU).
  Tensor logits_on_host();

  // Data parallelism (engine/parallel/data_parallel.h sets them; {} clears them).
  void set_parallel(ParallelHooks hooks) { parallel_ = std::move(hooks); }

  // Whether a pass (and a step around it) can be captured as a CUDA Graph:
  // nothing in it changes from call to call (dropout's masks follow the step)
  // or calls the host (the data-parallel hooks).
  bool capturable(bool training) const;

  std::vector<LayerInfo> summary() const;  // needs plan()
  double train_step_flops() const;          // forward + backward, multiply-add = 2

  struct Slot {  // a view into the arena, kept as a byte offset so it survives reallocation
    int64_t offset = 0, stride = 0;  // stride in elements
    Shape shape;
    DType dtype = DType::f32;  // the backend's activation type, or fp32 (logits, their gradient, the caller's input)
    Slot channels(int64_t c0, int64_t count) const;
  };
  // deep_head: deep supervision's 1x1 head on an upper decoder level (training only).
  enum class LayerKind { conv, pool, upconv, concat, head, deep_head };
  // One layer of the net, in the order forward() runs them. The constructor
  // builds the table once (names, channels, parameters); plan() gives each
  // layer its shapes and its place in the arena. Planning, summary() and the
  // ONNX exporter walk it; forward_ops() and backward_ops() are call lists over it.
  struct Layer {
    LayerKind kind = LayerKind::conv;
    std::string name;        // "enc0.conv1", "pool0", "bottleneck.conv0", "up2", "cat2", "dec2.conv0", "ds1", "head"
    int level = 0;           // 0..depth-1, depth for the bottleneck
    int64_t ci = 0, co = 0;  // channels in and out
    ConvSpec spec;           // conv, head
    bool crop = false;       // concat: the skip is a centre crop of the encoder's output ("valid" padding)
    PoolWindow window;       // pool, upconv: the level's window
    int64_t params = 0;      // how many parameters it holds (name + ".weight", ".bias", ".norm.weight", ...)
    int64_t w = -1, b = -1, gamma = -1, beta = -1, running = -1;  // parameter and state offsets
    // Set by plan(). concat: `in` is the encoder's output, `out` the concatenation [skip, up].
    Slot in, pre, out;       // pre == out but for a normalized conv
    int64_t stats = -1;      // arena offset of the norm's batch mean, then its invstd (groups each)
    int64_t argmax = -1;     // pool: offset into the pooling indices
    int conv = -1;           // conv, head: the backend's convolution plan
  };
  const std::vector<Layer>& layers() const { return layers_; }

 private:
  Tensor view(const Slot& s);
  uint8_t* argmax() const { return static_cast<uint8_t*>(argmax_.get()); }
  // The table as the constructor builds it: a layer, the parameters of the
  // layer added last (their offsets), a block of convs (its first layer's index).
  Layer& add_layer(LayerKind kind, const std::string& name, int level, int64_t ci, int64_t co);
  int64_t add_param(const std::string& name, std::vector<int64_t> shape);
  int add_block(const std::string& name, int level, int64_t ci, int64_t co);
  const Slot& block_out(int first) const { return layers_[first + config_.convs_per_level - 1].out; }
  void block_forward(int first, bool training);
  // Backward through a block whose output gradient is in dout (in place). Writes
  // the input gradient to `target` (when given) or to a scratch buffer other than
  // dout's, returned.
  Slot block_backward(int first, const Slot& dout, const Slot* target, bool need_input_grad);
  // A scratch buffer other than the one s lives in, viewed with `shape`.
  Slot other_scratch(const Slot& s, const Shape& shape) const;
  void dropout(const Slot& s, uint64_t site, bool backward);
  // The passes' op sequences; forward() and backward() run them, captured as a
  // CUDA Graph (per pass and input buffer: graphs_) where the backend does and
  // nothing in them changes from call to call.
  void forward_ops(bool training);
  void backward_ops();
  enum Pass { kForwardTrain, kForwardInfer, kBackward };
  void release_plan();  // the arena and everything planned with it go back to the backend
  // Lays out the arena (offsets only) for `input`; then the backend's plan of
  // each convolution, for its shapes and strides, and the workspace they need.
  void lay_out(const Shape& input);
  // lay_out's pieces: an aligned offset for `bytes`, a slot for a tensor, a
  // block's activations (its last output goes to `out` when given; returned).
  int64_t arena_offset(int64_t bytes);
  Slot alloc(const Shape& s, DType type);
  Slot lay_block(int first, const Slot& in, const Shape& out_shape, const Slot* out);
  struct Level;
  void lay_deep_head(Level& level, const Slot& in);
  void plan_convolutions();
  // What the arena, pooling indices and staging buffers take for `input` (no
  // workspace), laying the net out for it.
  int64_t layout_bytes(const Shape& input);
  // The error for a plan of `bytes` the backend cannot hold: what it needs,
  // what is free, and the largest batch that would fit (found by laying out
  // smaller batches: the layout is left for another batch, the plan released).
  OutOfMemory does_not_fit(const Shape& input, int64_t bytes);

  // Declared first: the buffers below go back to it before it goes.
  std::shared_ptr<Backend> backend_;
  UNetConfig config_;
  // Host copies; on the CPU backend the buffers the ops use (p_, g_, s_ point into them).
  mutable std::vector<float> params_, state_;
  std::vector<float> grads_;
  Backend::Memory device_params_, device_grads_, device_state_;  // GPU backends only
  float *p_ = nullptr, *g_ = nullptr, *s_ = nullptr;
  std::vector<ParamInfo> table_;
  std::vector<Layer> layers_;
  struct Level {  // a level's layers, as indices into layers_ (enc, dec: the block's first conv)
    int enc = 0, pool = 0, up = 0, cat = 0, dec = 0;
    int deep = -1;  // its deep supervision head, if any
    Slot dcat;  // the concatenation's gradient
    // Deep supervision: fp32 logits and their gradient (deep.out, deep_dhead:
    // their 16-bit copies under mixed precision), the labels' arena offset, and
    // how many input voxels one of this level's covers (D, H, W).
    Slot deep_logits, deep_dlogits, deep_dhead;
    int64_t deep_labels = -1;
    Grid stride{1, 1, 1};
  };
  std::vector<Level> levels_;  // 0..depth-1
  int bottleneck_ = 0, head_ = 0;  // the bottleneck's first conv, the head
  Shape input_;
  Tensor input_tensor_;  // the caller's input during forward() and backward()
  Backend::Memory arena_, argmax_, workspace_, staged_input_[2], staged_labels_[2];
  int staged_ = 0;  // the staging pair the last batch went to
  char* a_ = nullptr;  // arena_'s bytes
  DType act_ = DType::f32;  // the backend's activation type
  int64_t argmax_count_ = 0, workspace_bytes_ = 0, arena_bytes_ = 0, norm_groups_ = 0;
  int64_t largest_ = 0;  // elements of the largest arena tensor
  std::vector<float> host_logits_;
  Slot scratch_[2], logits_, dlogits_;
  Slot input_copy_;  // what the first convolution reads: the caller's input (offset -1) or its 16-bit copy
  Slot dhead_;       // the head's output gradient: dlogits_, or its 16-bit copy
  uint64_t step_ = 0;
  ParallelHooks parallel_;
  CudaGraphs graphs_[3];  // per Pass
  int64_t reserved_ = 0;  // arena bytes handed out by plan()
};

}  // namespace unet
