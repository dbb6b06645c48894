#include "engine/model/unet_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>

#include "engine/device/ops.h"
#include "kernels/maxpool.h"
#include "kernels/upconv.h"

namespace unet {
namespace {

Shape with(Shape s, int64_t c, int64_t d, int64_t h, int64_t w) {
  s.c = c, s.d = d, s.h = h, s.w = w;
  return s;
}

// Sizes along one axis through the net; 0 where the axis does not pass.
struct AxisPlan {
  std::vector<int64_t> enc, dec;  // encoder output and decoder output per level
  int64_t bottleneck = 0;
  std::string failure;            // empty when the size passes
};

AxisPlan plan_axis(int64_t size, const UNetConfig& c) {
  AxisPlan p;
  const int64_t shrink = c.padding == Padding::valid ? int64_t(c.convs_per_level) * (c.kernel - 1) : 0;
  int64_t s = size;
  for (int l = 0; l < c.depth; ++l) {
    const int64_t e = s - shrink;
    if (e < 2 || e % 2) {
      p.failure = "level " + std::to_string(l) + " would pool " + std::to_string(e) + " (not an even size >= 2)";
      return p;
    }
    p.enc.push_back(e);
    s = e / 2;
  }
  p.bottleneck = s - shrink;
  if (p.bottleneck < 1) {
    p.failure = "the bottleneck would be " + std::to_string(p.bottleneck) + " wide";
    return p;
  }
  p.dec.resize(c.depth);
  s = p.bottleneck;
  for (int l = c.depth - 1; l >= 0; --l) {
    s = 2 * s - shrink;
    if (s < 1) {
      p.failure = "decoder level " + std::to_string(l) + " would be " + std::to_string(s) + " wide";
      return p;
    }
    p.dec[l] = s;
  }
  return p;
}

// The nearest sizes below and above `size` that pass, for the error message.
std::string nearest_sizes(int64_t size, const UNetConfig& c) {
  std::string out;
  for (int64_t s = size - 1; s >= 1; --s)
    if (plan_axis(s, c).failure.empty()) {
      out = std::to_string(s);
      break;
    }
  for (int64_t s = size + 1; s < size + 4096; ++s)
    if (plan_axis(s, c).failure.empty()) return out.empty() ? std::to_string(s) : out + " or " + std::to_string(s);
  return out;
}

}  // namespace

UNet::Slot UNet::Slot::channels(int64_t c0, int64_t count) const {
  Slot s = *this;
  s.offset += c0 * shape.spatial() * dtype_bytes(dtype);
  s.shape.c = count;
  return s;
}

UNet::Block UNet::make_block(const std::string& name, int64_t ci, int64_t co) {
  auto add = [this](const std::string& n, std::vector<int64_t> shape) {
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    const int64_t offset = table_.empty() ? 0 : table_.back().offset + table_.back().count;
    table_.push_back({n, offset, count, std::move(shape)});
    return offset;
  };
  Block b;
  for (int j = 0; j < config_.convs_per_level; ++j) {
    ConvLayer L;
    L.name = name + ".conv" + std::to_string(j);
    L.spec = {config_.kernel, config_.padding};
    L.ci = j == 0 ? ci : co;
    L.co = co;
    std::vector<int64_t> wshape{L.co, L.ci};
    for (int d = 0; d < config_.dims; ++d) wshape.push_back(config_.kernel);
    L.w = add(L.name + ".weight", wshape);
    if (config_.norm == NormChoice::none) {
      L.b = add(L.name + ".bias", {co});
    } else {
      L.gamma = add(L.name + ".norm.weight", {co});
      L.beta = add(L.name + ".norm.bias", {co});
      if (config_.norm == NormChoice::batch) {
        L.running = static_cast<int64_t>(state_.size());
        state_.resize(state_.size() + 2 * co);
        std::fill(state_.end() - co, state_.end(), 1.f);  // running variance starts at 1
      }
    }
    b.convs.push_back(std::move(L));
  }
  return b;
}

UNet::UNet(const UNetConfig& config) : backend_(cpu_backend()), config_(config) {
  config_.validate();
  const int depth = config_.depth;
  levels_.resize(depth);
  for (int l = 0; l < depth; ++l)
    levels_[l].enc = make_block("enc" + std::to_string(l), l == 0 ? config_.in_channels : config_.filters(l - 1),
                                config_.filters(l));
  bottleneck_ = make_block("bottleneck", config_.filters(depth - 1), config_.filters(depth));
  for (int l = depth - 1; l >= 0; --l) {
    Level& L = levels_[l];
    const int64_t ci = config_.filters(l + 1), co = config_.filters(l);
    std::vector<int64_t> wshape{ci, co};
    for (int d = 0; d < config_.dims; ++d) wshape.push_back(2);
    const int64_t w_off = table_.back().offset + table_.back().count;
    table_.push_back({"up" + std::to_string(l) + ".weight", w_off, upconv_weight_count(config_.dims, ci, co), wshape});
    table_.push_back({"up" + std::to_string(l) + ".bias", table_.back().offset + table_.back().count, co, {co}});
    L.up_w = table_[table_.size() - 2].offset;
    L.up_b = table_.back().offset;
    L.dec = make_block("dec" + std::to_string(l), 2 * co, co);
  }
  head_.name = "head";
  head_.spec = {1, Padding::same};
  head_.ci = config_.filters(0);
  head_.co = config_.out_channels();
  std::vector<int64_t> hshape{head_.co, head_.ci};
  for (int d = 0; d < config_.dims; ++d) hshape.push_back(1);
  head_.w = table_.back().offset + table_.back().count;
  table_.push_back({"head.weight", head_.w, head_.co * head_.ci, hshape});
  head_.b = head_.w + head_.co * head_.ci;
  table_.push_back({"head.bias", head_.b, head_.co, {head_.co}});
  params_.assign(static_cast<size_t>(head_.b + head_.co), 0.f);
  grads_.assign(params_.size(), 0.f);

  // He initialization (normal, std sqrt(2 / fan_in)) of every weight; biases 0,
  // norm scales 1. An up-convolution output sees one tap of each input channel.
  std::mt19937_64 rng(config_.seed);
  for (const ParamInfo& p : table_) {
    const bool weight = p.name.size() > 7 && p.name.compare(p.name.size() - 7, 7, ".weight") == 0;
    if (p.name.find(".norm.") != std::string::npos) {
      if (weight) std::fill_n(params_.data() + p.offset, p.count, 1.f);
      continue;
    }
    if (!weight) continue;
    const bool up = p.name.compare(0, 2, "up") == 0;
    double fan_in = double(up ? p.shape[0] : p.shape[1]);
    if (!up)
      for (size_t d = 2; d < p.shape.size(); ++d) fan_in *= double(p.shape[d]);
    std::normal_distribution<float> normal(0.f, static_cast<float>(std::sqrt(2.0 / fan_in)));
    for (int64_t i = 0; i < p.count; ++i) params_[p.offset + i] = normal(rng);
  }
  p_ = params_.data(), g_ = grads_.data(), s_ = state_.data();
  input_ = Shape{0, 0, 0, 0, 0, config_.dims};  // not planned
}

UNet::~UNet() = default;

void UNet::to(std::shared_ptr<Backend> backend) {
  copy_to_host();
  copy_grads_to_host();
  release_plan();
  // The new backend's copies first: if it cannot hold them, nothing has moved.
  const int64_t pbytes = parameter_count() * int64_t(sizeof(float)), sbytes = int64_t(state_.size() * sizeof(float));
  Backend::Memory params, grads, state;
  if (backend->separate_memory()) {
    params = backend->allocate(pbytes), grads = backend->allocate(pbytes), state = backend->allocate(sbytes);
    backend->upload(params.get(), params_.data(), pbytes);
    backend->upload(grads.get(), grads_.data(), pbytes);
    backend->upload(state.get(), state_.data(), sbytes);
  }
  device_params_.reset(), device_grads_.reset(), device_state_.reset();  // back to the old backend
  backend_ = std::move(backend);
  device_params_ = std::move(params), device_grads_ = std::move(grads), device_state_ = std::move(state);
  p_ = device_params_ ? static_cast<float*>(device_params_.get()) : params_.data();
  g_ = device_grads_ ? static_cast<float*>(device_grads_.get()) : grads_.data();
  s_ = device_state_ ? static_cast<float*>(device_state_.get()) : state_.data();
}

void UNet::copy_to_host() const {
  if (!device_params_) return;
  backend_->download(params_.data(), p_, parameter_count() * int64_t(sizeof(float)));
  backend_->download(state_.data(), s_, int64_t(state_.size() * sizeof(float)));
}

void UNet::copy_to_device() {
  if (!device_params_) return;
  backend_->upload(p_, params_.data(), parameter_count() * int64_t(sizeof(float)));
  backend_->upload(s_, state_.data(), int64_t(state_.size() * sizeof(float)));
}

void UNet::copy_grads_to_host() {
  if (device_grads_) backend_->download(grads_.data(), g_, parameter_count() * int64_t(sizeof(float)));
}

void UNet::zero_grads() { backend_->zero(g_, parameter_count() * int64_t(sizeof(float))); }

void UNet::release_plan() {
  for (CudaGraphs& g : graphs_) g.clear();
  ++backend_->graphs().generation;  // every graph naming the buffers that go now captures again
  arena_.reset(), argmax_.reset(), workspace_.reset();
  for (int i = 0; i < 2; ++i) staged_input_[i].reset(), staged_labels_[i].reset();
  a_ = nullptr;
  arena_bytes_ = 0;
  input_ = Shape{0, 0, 0, 0, 0, config_.dims};
}

int64_t UNet::layout_bytes(const Shape& input) {
  lay_out(input);
  const Shape& out = logits_.shape;
  const int64_t staging =
      backend_->separate_memory()
          ? 2 * (input.count() * int64_t(sizeof(float)) + out.n * out.spatial() * int64_t(sizeof(int32_t)))
          : 0;
  return reserved_ + argmax_count_ + staging;
}

void UNet::plan(const Shape& input) {
  release_plan();  // nothing of an old plan survives a failure: the next call plans again
  // Refused before any convolution is planned (cuDNN cannot describe a tensor
  // past its limit) and again with their workspace.
  int64_t bytes = layout_bytes(input);
  if (bytes > backend_->free_bytes() || largest_ > backend_->max_tensor_elements()) throw does_not_fit(input, bytes);
  plan_convolutions();
  bytes += workspace_bytes_;
  if (bytes > backend_->free_bytes()) throw does_not_fit(input, bytes);
  const Shape out = logits_.shape;
  try {
    arena_ = backend_->allocate(reserved_);
    argmax_ = backend_->allocate(argmax_count_);
    workspace_ = backend_->allocate(workspace_bytes_);
    if (backend_->separate_memory()) {
      for (int i = 0; i < 2; ++i) {
        staged_input_[i] = backend_->allocate(input.count() * int64_t(sizeof(float)));
        staged_labels_[i] = backend_->allocate(out.n * out.spatial() * int64_t(sizeof(int32_t)));
      }
    }
    ops::reserve(*backend_, out, norm_groups_);
  } catch (const OutOfMemory&) {
    release_plan();
    throw does_not_fit(input, bytes);
  }
  a_ = static_cast<char*>(arena_.get());
  arena_bytes_ = bytes;
  input_ = input;
}

OutOfMemory UNet::does_not_fit(const Shape& input, int64_t bytes) {
  const int64_t free = backend_->free_bytes(), limit = backend_->max_tensor_elements();
  int64_t workspace = workspace_bytes_;
  auto mib = [](int64_t b) { return std::to_string((b + (1 << 20) - 1) >> 20) + " MiB"; };
  const std::string need =
      largest_ > limit ? "makes a tensor of " + std::to_string(largest_) + " elements, more than " + backend_->name() +
                             " can address in one call (" + std::to_string(limit) + ")"
                       : "needs " + mib(bytes) + " on " + backend_->name() + " beside the model's parameters; " +
                             mib(free) + " are free";
  // The largest batch that fits, by laying the net out again (offsets only:
  // cheap), with the convolutions' workspace for one sample (it hardly depends
  // on the batch; on the CPU not at all).
  Shape s = input;
  s.n = 1;
  int64_t fits = 0;
  if (layout_bytes(s) <= free && largest_ <= limit) {
    plan_convolutions();
    workspace = std::max(workspace, workspace_bytes_);
    for (int64_t lo = 1, hi = input.n - 1; lo <= hi;) {
      s.n = lo + (hi - lo) / 2;
      if (layout_bytes(s) + workspace <= free && largest_ <= limit)
        fits = s.n, lo = s.n + 1;
      else
        hi = s.n - 1;
    }
  }
  // cuDNN's workspace may grow with the batch: check the answer with its own.
  for (; fits > 0; --fits) {
    s.n = fits;
    const int64_t b = layout_bytes(s);
    plan_convolutions();
    if (b + workspace_bytes_ <= free) break;
  }
  return OutOfMemory("a batch of " + std::to_string(input.n) + " " + need + ". " +
                     (fits > 0 ? "The largest batch that fits is " + std::to_string(fits) +
                                     ": lower --batch-size to it (or --size)"
                               : "Not even one sample fits: lower --size, --start-filters or --depth"));
}

void UNet::lay_out(const Shape& input) {
  const UNetConfig& c = config_;
  if (input.dims != c.dims || input.c != c.in_channels || input.n < 1)
    throw std::invalid_argument("input " + input.str() + " does not fit a " + c.str());
  const std::array<int64_t, 3> sizes = input.grid();
  const char* names[3] = {"depth", "height", "width"};
  AxisPlan axes[3];
  for (int a = 0; a < 3; ++a) {
    if (a == 0 && c.dims == 2) {
      axes[0].enc.assign(c.depth, 1);
      axes[0].dec.assign(c.depth, 1);
      axes[0].bottleneck = 1;
      continue;
    }
    axes[a] = plan_axis(sizes[a], c);
    if (!axes[a].failure.empty())
      throw std::invalid_argument("input " + std::string(names[a]) + " " + std::to_string(sizes[a]) +
                                  " cannot pass through the U-Net (" + axes[a].failure + "); " +
                                  (c.padding == Padding::same ? "it must divide by 2^depth = " +
                                                                    std::to_string(1 << c.depth) + ": "
                                                              : "") +
                                  "the nearest sizes that work are " + nearest_sizes(sizes[a], c));
  }
  reserved_ = 0;
  norm_groups_ = 0;
  workspace_bytes_ = 0;
  act_ = backend_->activation_type();
  int64_t largest = 0, argmax = 0;
  // Every buffer starts on a 256-byte boundary, as vectorized and tensor-core
  // kernels like their operands.
  auto align = [this] { reserved_ = (reserved_ + 255) / 256 * 256; };
  auto alloc = [&](const Shape& s, DType type) {
    align();
    Slot slot{reserved_, s.sample(), s, type};
    reserved_ += s.count() * dtype_bytes(type);
    largest = std::max(largest, s.count());
    return slot;
  };
  auto activation = [&](const Shape& s) { return alloc(s, act_); };
  auto enc_shape = [&](int l, int64_t ch) { return with(input, ch, axes[0].enc[l], axes[1].enc[l], axes[2].enc[l]); };
  auto dec_shape = [&](int l, int64_t ch) { return with(input, ch, axes[0].dec[l], axes[1].dec[l], axes[2].dec[l]); };
  auto up_size = [&](int a, int l) {  // the up-convolution's output size along axis a at level l
    if (a == 0 && c.dims == 2) return int64_t(1);
    return 2 * (l + 1 < c.depth ? axes[a].dec[l + 1] : axes[a].bottleneck);
  };
  auto cat_shape = [&](int l) {  // the decoder's input: twice the level's filters at the up path's size
    return with(input, 2 * c.filters(l), up_size(0, l), up_size(1, l), up_size(2, l));
  };
  // A block's activations; its last output goes to `out` when given.
  auto lay_block = [&](Block& b, const Slot& in, const Shape& out_shape, const Slot* out) {
    Slot cur = in;
    for (size_t j = 0; j < b.convs.size(); ++j) {
      ConvLayer& L = b.convs[j];
      L.in = cur;
      const Shape s = conv_output_shape(cur.shape, L.co, L.spec);
      const bool last = j + 1 == b.convs.size();
      if (last) expect_shape("U-Net plan", L.name.c_str(), s, out_shape);
      L.out = last && out ? *out : activation(s);
      L.pre = c.norm == NormChoice::none ? L.out : activation(s);
      if (c.norm != NormChoice::none) {
        const int64_t groups = norm_groups(c.norm_spec().kind, s);
        align();
        L.stats = reserved_;
        reserved_ += 2 * groups * int64_t(sizeof(float));
        norm_groups_ = std::max(norm_groups_, groups);
      }
      cur = L.out;
    }
  };
  // The caller's fp32 input; under mixed precision its 16-bit copy in the arena.
  const Slot caller_input{-1, input.sample(), input, DType::f32};
  const Slot input_slot = act_ == DType::f32 ? caller_input : activation(input);
  input_copy_ = input_slot;
  for (int l = 0; l < c.depth; ++l) {
    Level& L = levels_[l];
    L.cat = activation(cat_shape(l));
    const Slot skip = L.cat.channels(0, c.filters(l));
    const Shape eo = enc_shape(l, c.filters(l));
    const bool zero_copy = eo == skip.shape;  // "same" padding: the encoder writes its skip in place
    if (zero_copy) {
      lay_block(L.enc, l == 0 ? input_slot : levels_[l - 1].pooled, eo, &skip);
      L.enc_out = skip;
    } else {
      lay_block(L.enc, l == 0 ? input_slot : levels_[l - 1].pooled, eo, nullptr);
      L.enc_out = L.enc.out();
    }
    L.pooled = activation(maxpool_output_shape(eo));
    L.argmax = argmax;
    argmax += L.pooled.shape.count();
  }
  const int depth = c.depth;
  lay_block(bottleneck_, levels_[depth - 1].pooled,
            with(input, c.filters(depth), axes[0].bottleneck, axes[1].bottleneck, axes[2].bottleneck), nullptr);
  for (int l = depth - 1; l >= 0; --l) {
    Level& L = levels_[l];
    const Slot& prev = l + 1 < depth ? levels_[l + 1].dec.out() : bottleneck_.out();
    workspace_bytes_ = std::max(workspace_bytes_, ops::upconv_workspace_bytes(*backend_, prev.shape, c.filters(l)));
    lay_block(L.dec, L.cat, dec_shape(l, c.filters(l)), nullptr);
    L.dcat = activation(L.cat.shape);
  }
  head_.in = levels_[0].dec.out();
  // The loss reads fp32 logits and writes an fp32 gradient; under mixed
  // precision the head computes 16-bit ones, converted at the pass's edges.
  const Shape logits = conv_output_shape(head_.in.shape, head_.co, head_.spec);
  logits_ = alloc(logits, DType::f32);
  dlogits_ = alloc(logits, DType::f32);
  head_.out = head_.pre = act_ == DType::f32 ? logits_ : activation(logits);
  dhead_ = act_ == DType::f32 ? dlogits_ : activation(logits);
  for (Slot& s : scratch_) {
    align();
    s = Slot{reserved_, 0, {}, act_};
    reserved_ += largest * dtype_bytes(act_);
  }
  largest_ = std::max(largest, input.count());  // the input goes to a convolution too
  argmax_count_ = argmax;
}

void UNet::plan_convolutions() {
  auto plan = [this](ConvLayer& L) {
    // Forward writes y = pre, backward reads dy where the block's gradient lies
    // (out's layout: the skip half of a concatenation for an encoder's last conv).
    L.conv = ops::plan_conv(*backend_, L.in.shape, L.co, L.spec, {L.in.stride, L.pre.stride, L.out.stride});
    workspace_bytes_ = std::max(workspace_bytes_, ops::conv_workspace_bytes(*backend_, L.conv));
  };
  for (Level& L : levels_) {
    for (ConvLayer& c : L.enc.convs) plan(c);
    for (ConvLayer& c : L.dec.convs) plan(c);
  }
  for (ConvLayer& c : bottleneck_.convs) plan(c);
  plan(head_);
}

Shape UNet::output_shape() const { return logits_.shape; }

Tensor UNet::view(const Slot& s) {
  if (s.offset < 0) return input_tensor_;
  return Tensor(a_ + s.offset, s.shape, s.stride, s.dtype);
}

UNet::Slot UNet::other_scratch(const Slot& s, const Shape& shape) const {
  const Slot& pick = s.offset == scratch_[0].offset ? scratch_[1] : scratch_[0];
  return Slot{pick.offset, shape.sample(), shape, act_};
}

Tensor UNet::dlogits() { return view(dlogits_); }

Tensor UNet::logits_on_host() {
  if (!backend_->separate_memory()) return view(logits_);
  host_logits_.resize(static_cast<size_t>(logits_.shape.count()));
  backend_->download(host_logits_.data(), a_ + logits_.offset, logits_.shape.count() * int64_t(sizeof(float)));
  return Tensor(host_logits_.data(), logits_.shape);
}

Tensor UNet::stage_input(const float* host) {
  if (!staged_input_[0]) return Tensor(const_cast<float*>(host), input_);  // the CPU reads it where it is
  staged_ ^= 1;
  backend_->begin_batch();
  void* dst = staged_input_[staged_].get();
  backend_->stage(dst, host, input_.count() * int64_t(sizeof(float)));
  return Tensor(static_cast<float*>(dst), input_);
}

const int32_t* UNet::stage_labels(const int32_t* host) {
  if (!staged_labels_[staged_]) return host;
  const Shape& o = logits_.shape;
  void* dst = staged_labels_[staged_].get();
  backend_->stage(dst, host, o.n * o.spatial() * int64_t(sizeof(int32_t)));
  return static_cast<const int32_t*>(dst);
}

void UNet::dropout(const Slot& s, uint64_t site, bool backward) {
  const DropoutSpec spec{config_.dropout, config_.seed, 2 * step_ + site, parallel_.first_sample};
  const Tensor t = view(s);
  backward ? ops::dropout_backward(*backend_, t, t, spec) : ops::dropout_forward(*backend_, t, t, spec);
}

void UNet::block_forward(Block& b, bool training) {
  void* ws = workspace_.get();
  for (ConvLayer& L : b.convs) {
    const Tensor pre = view(L.pre), out = view(L.out);
    if (config_.norm == NormChoice::none) {  // pre == out
      ops::conv_bias_act_forward(*backend_, L.conv, view(L.in), p_ + L.w, p_ + L.b, out, config_.activation, ws);
      continue;
    }
    ops::conv_forward(*backend_, L.conv, view(L.in), p_ + L.w, nullptr, pre, ws);
    const NormSpec ns = config_.norm_spec();
    float* rm = L.running >= 0 ? s_ + L.running : nullptr;
    float* rv = L.running >= 0 ? rm + L.co : nullptr;
    float* mean = reinterpret_cast<float*>(a_ + L.stats);
    float* invstd = mean + norm_groups(ns.kind, L.pre.shape);
    if (training)
      ops::norm_forward_train(*backend_, pre, out, p_ + L.gamma, p_ + L.beta, mean, invstd, rm, rv, ns, parallel_.norm_sums);
    else
      ops::norm_forward_infer(*backend_, pre, out, p_ + L.gamma, p_ + L.beta, rm, rv, ns);
    ops::bias_act_forward(*backend_, out, nullptr, config_.activation);
  }
}

bool UNet::capturable(bool training) const {
  // Dropout's masks follow the step, and the data-parallel hooks call the host
  // in the middle of a pass: a captured pass would freeze or skip them.
  return !(training && config_.dropout > 0.f) && !parallel_.grads_ready && !parallel_.norm_sums;
}

Tensor UNet::forward(const Tensor& input, bool training, uint64_t step) {
  expect_shape("U-Net forward", "input", input.shape, input_);
  input_tensor_ = input;
  step_ = step;
  auto ops = [this, training] { forward_ops(training); };
  if (capturable(training))
    graphs_[training ? kForwardTrain : kForwardInfer][{input.data, input.batch_stride, nullptr}].run(*backend_, ops);
  else
    ops();
  return view(logits_);
}

void UNet::forward_ops(bool training) {
  const bool drop = training && config_.dropout > 0.f;
  const int depth = config_.depth;
  if (input_copy_.offset >= 0) ops::convert(*backend_, input_tensor_, view(input_copy_));
  for (int l = 0; l < depth; ++l) {
    Level& L = levels_[l];
    block_forward(L.enc, training);
    if (drop && l == depth - 1) dropout(L.enc_out, 0, false);
    if (L.enc_out.offset != L.cat.offset)
      ops::crop_forward(*backend_, view(L.enc_out), view(L.cat.channels(0, config_.filters(l))));
    ops::maxpool_forward(*backend_, view(L.enc_out), view(L.pooled), argmax() + L.argmax);
  }
  block_forward(bottleneck_, training);
  if (drop) dropout(bottleneck_.out(), 1, false);
  void* ws = workspace_.get();
  for (int l = depth - 1; l >= 0; --l) {
    Level& L = levels_[l];
    const Slot& prev = l + 1 < depth ? levels_[l + 1].dec.out() : bottleneck_.out();
    ops::upconv_forward(*backend_, view(prev), p_ + L.up_w, p_ + L.up_b,
                             view(L.cat.channels(config_.filters(l), config_.filters(l))), ws);
    block_forward(L.dec, training);
  }
  ops::conv_forward(*backend_, head_.conv, view(head_.in), p_ + head_.w, p_ + head_.b, view(head_.out), ws);
  if (head_.out.offset != logits_.offset) ops::convert(*backend_, view(head_.out), view(logits_));
}

UNet::Slot UNet::block_backward(Block& b, const Slot& dout, const Slot* target, bool need_input_grad) {
  void* ws = workspace_.get();
  Slot cur = dout;
  for (size_t j = b.convs.size(); j-- > 0;) {
    ConvLayer& L = b.convs[j];
    const Tensor d = view(cur);
    if (config_.norm == NormChoice::none) {
      ops::bias_act_backward(*backend_, view(L.out), d, g_ + L.b, config_.activation);
    } else {
      const NormSpec ns = config_.norm_spec();
      const auto* mean = reinterpret_cast<const float*>(a_ + L.stats);
      ops::bias_act_backward(*backend_, view(L.out), d, nullptr, config_.activation);
      ops::norm_backward(*backend_, view(L.pre), d, d, p_ + L.gamma, mean, mean + norm_groups(ns.kind, L.pre.shape),
                              g_ + L.gamma, g_ + L.beta, ns, parallel_.norm_sums);
    }
    Slot din{};
    const bool want = j > 0 || target || need_input_grad;
    if (want) din = j == 0 && target ? *target : other_scratch(cur, L.in.shape);
    ops::conv_backward(*backend_, L.conv, view(L.in), p_ + L.w, d, want ? view(din) : Tensor(), g_ + L.w, nullptr,
                            GradMode::overwrite, ws);
    if (parallel_.grads_ready) parallel_.grads_ready(L.w);  // a layer's weight comes first in the table
    cur = din;
  }
  return cur;
}

void UNet::backward(const Tensor& input) {
  expect_shape("U-Net backward", "input", input.shape, input_);
  input_tensor_ = input;
  auto ops = [this] { backward_ops(); };
  if (capturable(true))
    graphs_[kBackward][{input.data, input.batch_stride, nullptr}].run(*backend_, ops);
  else
    ops();
}

void UNet::backward_ops() {
  const int depth = config_.depth;
  void* ws = workspace_.get();
  if (dhead_.offset != dlogits_.offset) ops::convert(*backend_, view(dlogits_), view(dhead_));
  Slot cur = other_scratch(dhead_, head_.in.shape);
  ops::conv_backward(*backend_, head_.conv, view(head_.in), p_ + head_.w, view(dhead_), view(cur), g_ + head_.w,
                          g_ + head_.b, GradMode::overwrite, ws);
  if (parallel_.grads_ready) parallel_.grads_ready(head_.w);
  for (int l = 0; l < depth; ++l) {
    Level& L = levels_[l];
    block_backward(L.dec, cur, &L.dcat, true);
    const Slot& prev = l + 1 < depth ? levels_[l + 1].dec.out() : bottleneck_.out();
    cur = other_scratch(L.dcat, prev.shape);
    const int64_t f = config_.filters(l);
    ops::upconv_backward(*backend_, view(prev), p_ + L.up_w, view(L.dcat.channels(f, f)), view(cur), g_ + L.up_w,
                              g_ + L.up_b, GradMode::overwrite, ws);
    if (parallel_.grads_ready) parallel_.grads_ready(L.up_w);
  }
  const bool drop = config_.dropout > 0.f;
  if (drop) dropout(cur, 1, true);
  Slot dpooled = block_backward(bottleneck_, cur, nullptr, true);
  for (int l = depth - 1; l >= 0; --l) {
    Level& L = levels_[l];
    const Slot skip = L.dcat.channels(0, config_.filters(l));
    Slot dout = skip;
    if (L.enc_out.offset != L.cat.offset) {  // "valid": the skip was a crop of the encoder output
      dout = other_scratch(dpooled, L.enc_out.shape);
      ops::crop_backward(*backend_, view(skip), view(dout), GradMode::overwrite);
    }
    ops::maxpool_backward(*backend_, view(dpooled), argmax() + L.argmax, view(dout), GradMode::accumulate);
    if (drop && l == depth - 1) dropout(dout, 0, true);
    dpooled = block_backward(L.enc, dout, nullptr, l > 0);
  }
}

std::vector<LayerInfo> UNet::summary() const {
  std::vector<LayerInfo> rows;
  auto conv_row = [&](const ConvLayer& L) {
    int64_t params = 0;
    for (const ParamInfo& p : table_)
      if (p.name.compare(0, L.name.size() + 1, L.name + ".") == 0) params += p.count;
    const std::string k = std::to_string(L.spec.kernel);
    const std::string kind = &L == &head_ ? "conv 1x1 (logits)"
                             : "conv " + k + "x" + k + (config_.dims == 3 ? "x" + k : "") +
                                   (config_.norm == NormChoice::none ? " + act" : " + norm + act");
    rows.push_back({L.name, kind, L.out.shape, params, double(conv_macs(L.in.shape, L.co, L.spec))});
  };
  for (int l = 0; l < config_.depth; ++l) {
    for (const ConvLayer& L : levels_[l].enc.convs) conv_row(L);
    rows.push_back({"pool" + std::to_string(l), "max-pool", levels_[l].pooled.shape, 0, 0});
  }
  for (const ConvLayer& L : bottleneck_.convs) conv_row(L);
  for (int l = config_.depth - 1; l >= 0; --l) {
    const Level& L = levels_[l];
    const Slot& prev = l + 1 < config_.depth ? levels_[l + 1].dec.out() : bottleneck_.out();
    const int64_t f = config_.filters(l);
    rows.push_back({"up" + std::to_string(l), "up-conv 2x2", L.cat.channels(f, f).shape,
                    upconv_weight_count(config_.dims, prev.shape.c, f) + f, double(upconv_macs(prev.shape, f))});
    rows.push_back({"cat" + std::to_string(l), L.enc_out.offset == L.cat.offset ? "concat (zero-copy)" : "crop+concat",
                    L.cat.shape, 0, 0});
    for (const ConvLayer& C : L.dec.convs) conv_row(C);
  }
  conv_row(head_);
  return rows;
}

double UNet::train_step_flops() const {
  double macs = 0;
  for (const LayerInfo& r : summary()) macs += r.forward_macs;
  return 3 * 2 * macs;  // forward, then backward data and filter: three GEMMs of the same size
}

}  // namespace unet
