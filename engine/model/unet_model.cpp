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
// A kernel's shape as PyTorch keeps it: {a, b, k, k[, k]}.
std::vector<int64_t> kernel_shape(int64_t a, int64_t b, int64_t k, int dims) {
  std::vector<int64_t> s{a, b};
  s.insert(s.end(), dims, k);
  return s;
}

// An up-convolution's: {ci, co, [kd,] kh, kw}, its window.
std::vector<int64_t> window_shape(int64_t ci, int64_t co, PoolWindow w, int dims) {
  if (dims == 3) return {ci, co, w.d, w.h, w.w};
  return {ci, co, w.h, w.w};
}

}  // namespace

UNet::Slot UNet::Slot::channels(int64_t c0, int64_t count) const {
  Slot s = *this;
  s.offset += c0 * shape.spatial() * dtype_bytes(dtype);
  s.shape.c = count;
  return s;
}

UNet::Layer& UNet::add_layer(LayerKind kind, const std::string& name, int level, int64_t ci, int64_t co) {
  Layer L;
  L.kind = kind, L.name = name, L.level = level, L.ci = ci, L.co = co;
  layers_.push_back(std::move(L));
  return layers_.back();
}

int64_t UNet::add_param(const std::string& name, std::vector<int64_t> shape) {
  int64_t count = 1;
  for (int64_t d : shape) count *= d;
  const int64_t offset = table_.empty() ? 0 : table_.back().offset + table_.back().count;
  table_.push_back({name, offset, count, std::move(shape)});
  layers_.back().params += count;
  return offset;
}

int UNet::add_block(const std::string& name, int level, int64_t ci, int64_t co) {
  const int first = static_cast<int>(layers_.size());
  for (int j = 0; j < config_.convs_per_level; ++j) {
    Layer& L = add_layer(LayerKind::conv, name + ".conv" + std::to_string(j), level, j == 0 ? ci : co, co);
    L.spec = {config_.kernel, config_.padding};
    L.w = add_param(L.name + ".weight", kernel_shape(co, L.ci, config_.kernel, config_.dims));
    if (config_.norm == NormChoice::none) {
      L.b = add_param(L.name + ".bias", {co});
      continue;
    }
    L.gamma = add_param(L.name + ".norm.weight", {co});
    L.beta = add_param(L.name + ".norm.bias", {co});
    if (config_.norm == NormChoice::batch) {
      L.running = static_cast<int64_t>(state_.size());
      state_.resize(state_.size() + 2 * co);
      std::fill(state_.end() - co, state_.end(), 1.f);  // running variance starts at 1
    }
  }
  return first;
}

// The layers in forward order, which is also the order of the parameters.
UNet::UNet(const UNetConfig& config) : backend_(cpu_backend()), config_(config) {
  config_.validate();
  const int depth = config_.depth, dims = config_.dims;
  levels_.resize(depth);
  for (int l = 0; l < depth; ++l) {
    const std::string n = std::to_string(l);
    const int64_t f = config_.filters(l);
    levels_[l].enc = add_block("enc" + n, l, l == 0 ? config_.in_channels : config_.filters(l - 1), f);
    levels_[l].pool = static_cast<int>(layers_.size());
    add_layer(LayerKind::pool, "pool" + n, l, f, f).window = config_.window(l);
  }
  bottleneck_ = add_block("bottleneck", depth, config_.filters(depth - 1), config_.filters(depth));
  const std::vector<float> loss_weights = config_.loss_weights();
  for (int l = depth - 1; l >= 0; --l) {
    Level& V = levels_[l];
    const std::string n = std::to_string(l);
    const int64_t ci = config_.filters(l + 1), co = config_.filters(l);
    V.up = static_cast<int>(layers_.size());
    Layer& up = add_layer(LayerKind::upconv, "up" + n, l, ci, co);
    up.window = config_.window(l);
    up.w = add_param(up.name + ".weight", window_shape(ci, co, up.window, dims));
    up.b = add_param(up.name + ".bias", {co});
    V.cat = static_cast<int>(layers_.size());
    // "valid" convolutions leave the encoder's output larger than the up path's.
    add_layer(LayerKind::concat, "cat" + n, l, 2 * co, 2 * co).crop =
        config_.padding == Padding::valid && config_.kernel > 1;
    V.dec = add_block("dec" + n, l, 2 * co, co);
    if (l > 0 && config_.deep_supervision && loss_weights[l] > 0) {
      V.deep = static_cast<int>(layers_.size());
      Layer& ds = add_layer(LayerKind::deep_head, "ds" + n, l, co, config_.out_channels());
      ds.spec = {1, Padding::same};
      ds.w = add_param(ds.name + ".weight", kernel_shape(ds.co, ds.ci, 1, dims));
      ds.b = add_param(ds.name + ".bias", {ds.co});
    }
  }
  head_ = static_cast<int>(layers_.size());
  Layer& head = add_layer(LayerKind::head, "head", 0, config_.filters(0), config_.out_channels());
  head.spec = {1, Padding::same};
  head.w = add_param("head.weight", kernel_shape(head.co, head.ci, 1, dims));
  head.b = add_param("head.bias", {head.co});
  params_.assign(static_cast<size_t>(table_.back().offset + table_.back().count), 0.f);
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
  input_ = Shape{0, 0, 0, 0, 0, dims};  // not planned
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

std::vector<UNet::DeepOutput> UNet::deep_outputs(const int32_t* labels) {
  std::vector<DeepOutput> out;
  const std::vector<float> weights = config_.loss_weights();
  for (int l = 0; l < config_.depth; ++l) {
    const Level& V = levels_[l];
    if (V.deep < 0) continue;
    auto* coarse = reinterpret_cast<int32_t*>(a_ + V.deep_labels);
    ops::subsample_labels(*backend_, labels, input_.n, input_.grid(), V.stride, coarse);
    out.push_back({view(V.deep_logits), view(V.deep_dlogits), coarse, weights[l]});
  }
  return out;
}

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

void UNet::block_forward(int first, bool training) {
  void* ws = workspace_.get();
  for (int j = first; j < first + config_.convs_per_level; ++j) {
    const Layer& L = layers_[j];
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
    const Layer &pool = layers_[levels_[l].pool], &cat = layers_[levels_[l].cat];
    block_forward(levels_[l].enc, training);
    if (drop && l == depth - 1) dropout(pool.in, 0, false);
    if (cat.crop) ops::crop_forward(*backend_, view(cat.in), view(cat.out.channels(0, config_.filters(l))));
    ops::maxpool_forward(*backend_, view(pool.in), view(pool.out), argmax() + pool.argmax, pool.window);
  }
  block_forward(bottleneck_, training);
  if (drop) dropout(block_out(bottleneck_), 1, false);
  void* ws = workspace_.get();
  for (int l = depth - 1; l >= 0; --l) {
    const Level& V = levels_[l];
    const Layer& up = layers_[V.up];
    ops::upconv_forward(*backend_, view(up.in), p_ + up.w, p_ + up.b, view(up.out), ws, up.window);
    block_forward(V.dec, training);
    if (training && V.deep >= 0) {
      const Layer& D = layers_[V.deep];
      ops::conv_forward(*backend_, D.conv, view(D.in), p_ + D.w, p_ + D.b, view(D.out), ws);
      if (D.out.offset != V.deep_logits.offset) ops::convert(*backend_, view(D.out), view(V.deep_logits));
    }
  }
  const Layer& head = layers_[head_];
  ops::conv_forward(*backend_, head.conv, view(head.in), p_ + head.w, p_ + head.b, view(head.out), ws);
  if (head.out.offset != logits_.offset) ops::convert(*backend_, view(head.out), view(logits_));
}

UNet::Slot UNet::block_backward(int first, const Slot& dout, const Slot* target, bool need_input_grad) {
  void* ws = workspace_.get();
  Slot cur = dout;
  for (int j = first + config_.convs_per_level; j-- > first;) {
    const Layer& L = layers_[j];
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
    const bool want = j > first || target || need_input_grad;
    if (want) din = j == first && target ? *target : other_scratch(cur, L.in.shape);
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
  const Layer& head = layers_[head_];
  if (dhead_.offset != dlogits_.offset) ops::convert(*backend_, view(dlogits_), view(dhead_));
  Slot cur = other_scratch(dhead_, head.in.shape);
  ops::conv_backward(*backend_, head.conv, view(head.in), p_ + head.w, view(dhead_), view(cur), g_ + head.w,
                     g_ + head.b, GradMode::overwrite, ws);
  if (parallel_.grads_ready) parallel_.grads_ready(head.w);
  for (int l = 0; l < depth; ++l) {
    const Level& V = levels_[l];
    const Layer& up = layers_[V.up];
    if (V.deep >= 0) {  // its head's gradient joins the one from above
      const Layer& D = layers_[V.deep];
      if (V.deep_dhead.offset != V.deep_dlogits.offset)
        ops::convert(*backend_, view(V.deep_dlogits), view(V.deep_dhead));
      ops::conv_backward(*backend_, D.conv, view(D.in), p_ + D.w, view(V.deep_dhead), view(cur), g_ + D.w, g_ + D.b,
                         GradMode::accumulate, ws);
      if (parallel_.grads_ready) parallel_.grads_ready(D.w);
    }
    block_backward(V.dec, cur, &V.dcat, true);
    cur = other_scratch(V.dcat, up.in.shape);
    const int64_t f = config_.filters(l);
    ops::upconv_backward(*backend_, view(up.in), p_ + up.w, view(V.dcat.channels(f, f)), view(cur), g_ + up.w,
                         g_ + up.b, GradMode::overwrite, ws, up.window);
    if (parallel_.grads_ready) parallel_.grads_ready(up.w);
  }
  const bool drop = config_.dropout > 0.f;
  if (drop) dropout(cur, 1, true);
  Slot dpooled = block_backward(bottleneck_, cur, nullptr, true);
  for (int l = depth - 1; l >= 0; --l) {
    const Level& V = levels_[l];
    const Layer &pool = layers_[V.pool], &cat = layers_[V.cat];
    const Slot skip = V.dcat.channels(0, config_.filters(l));
    Slot dout = skip;
    if (cat.crop) {
      dout = other_scratch(dpooled, cat.in.shape);
      ops::crop_backward(*backend_, view(skip), view(dout), GradMode::overwrite);
    }
    ops::maxpool_backward(*backend_, view(dpooled), argmax() + pool.argmax, view(dout), GradMode::accumulate,
                          pool.window);
    if (drop && l == depth - 1) dropout(dout, 0, true);
    dpooled = block_backward(V.enc, dout, nullptr, l > 0);
  }
}

std::vector<LayerInfo> UNet::summary() const {
  std::vector<LayerInfo> rows;
  const std::string k = std::to_string(config_.kernel);
  const std::string conv_kind = "conv " + k + "x" + k + (config_.dims == 3 ? "x" + k : "") +
                                (config_.norm == NormChoice::none ? " + act" : " + norm + act");
  for (const Layer& L : layers_) {
    switch (L.kind) {
      case LayerKind::conv:
        rows.push_back({L.name, conv_kind, L.out.shape, L.params, double(conv_macs(L.in.shape, L.co, L.spec))});
        break;
      case LayerKind::head:
        rows.push_back({L.name, "conv 1x1 (logits)", L.out.shape, L.params, double(conv_macs(L.in.shape, L.co, L.spec))});
        break;
      case LayerKind::deep_head:
        rows.push_back({L.name, "conv 1x1 (supervision)", L.out.shape, L.params,
                        double(conv_macs(L.in.shape, L.co, L.spec))});
        break;
      case LayerKind::pool:
        rows.push_back({L.name, "max-pool " + window_text(L.window, config_.dims), L.out.shape, 0, 0});
        break;
      case LayerKind::upconv:
        rows.push_back({L.name, "up-conv " + window_text(L.window, config_.dims), L.out.shape, L.params,
                        double(upconv_macs(L.in.shape, L.co, L.window))});
        break;
      case LayerKind::concat:
        rows.push_back({L.name, L.crop ? "crop+concat" : "concat (zero-copy)", L.out.shape, 0, 0});
        break;
    }
  }
  return rows;
}

double UNet::train_step_flops() const {
  double macs = 0;
  for (const LayerInfo& r : summary()) macs += r.forward_macs;
  return 3 * 2 * macs;  // forward, then backward data and filter: three GEMMs of the same size
}

}  // namespace unet
