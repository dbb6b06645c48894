#include "engine/unet_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>

#include "kernels/crop.h"
#include "kernels/dropout.h"
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
  s.offset += c0 * shape.spatial();
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

UNet::UNet(const UNetConfig& config) : config_(config) {
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
    table_.push_back({"up" + std::to_string(l) + ".weight", w_off, ci * co * (config_.dims == 3 ? 8 : 4), wshape});
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
}

void UNet::zero_grads() { std::fill(grads_.begin(), grads_.end(), 0.f); }

void UNet::plan(const Shape& input) {
  const UNetConfig& c = config_;
  if (input.dims != c.dims || input.c != c.in_channels || input.n < 1)
    throw std::invalid_argument("input " + input.str() + " does not fit a " + c.str());
  const int64_t sizes[3] = {input.d, input.h, input.w};
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
  input_ = input;
  reserved_ = 0;
  int64_t largest = 0, argmax = 0;
  auto alloc = [&](const Shape& s) {
    Slot slot{reserved_, s.sample(), s};
    reserved_ += s.count();
    largest = std::max(largest, s.count());
    return slot;
  };
  auto enc_shape = [&](int l, int64_t ch) { return with(input, ch, axes[0].enc[l], axes[1].enc[l], axes[2].enc[l]); };
  auto dec_shape = [&](int l, int64_t ch) { return with(input, ch, axes[0].dec[l], axes[1].dec[l], axes[2].dec[l]); };
  auto up_size = [&](int a, int l) {  // the up-convolution's output size along axis a at level l
    if (a == 0 && c.dims == 2) return int64_t(1);
    return 2 * (l + 1 < c.depth ? axes[a].dec[l + 1] : axes[a].bottleneck);
  };
  auto cat_shape = [&](int l) {  // the decoder's input: twice the level's filters at the up path's size
    return with(input, 2 * c.filters(l), up_size(0, l), up_size(1, l), up_size(2, l));
  };
  workspace_floats_ = 0;
  // A block's activations; its last output goes to `out` when given.
  auto lay_block = [&](Block& b, const Slot& in, const Shape& out_shape, const Slot* out) {
    Slot cur = in;
    for (size_t j = 0; j < b.convs.size(); ++j) {
      ConvLayer& L = b.convs[j];
      L.in = cur;
      const Shape s = conv_output_shape(cur.shape, L.co, L.spec);
      const bool last = j + 1 == b.convs.size();
      if (last) expect_shape("U-Net plan", L.name.c_str(), s, out_shape);
      L.out = last && out ? *out : alloc(s);
      L.pre = c.norm == NormChoice::none ? L.out : alloc(s);
      const int64_t groups = c.norm == NormChoice::none ? 0 : norm_groups(c.norm_spec().kind, s);
      L.mean.assign(groups, 0.f);
      L.invstd.assign(groups, 0.f);
      workspace_floats_ = std::max(workspace_floats_, conv_workspace_floats(cur.shape, L.co, L.spec));
      cur = L.out;
    }
  };
  const Slot input_slot{-1, input.sample(), input};
  for (int l = 0; l < c.depth; ++l) {
    Level& L = levels_[l];
    L.cat = alloc(cat_shape(l));
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
    L.pooled = alloc(maxpool_output_shape(eo));
    L.argmax = argmax;
    argmax += L.pooled.shape.count();
  }
  const int depth = c.depth;
  lay_block(bottleneck_, levels_[depth - 1].pooled,
            with(input, c.filters(depth), axes[0].bottleneck, axes[1].bottleneck, axes[2].bottleneck), nullptr);
  for (int l = depth - 1; l >= 0; --l) {
    Level& L = levels_[l];
    const Slot& prev = l + 1 < depth ? levels_[l + 1].dec.out() : bottleneck_.out();
    workspace_floats_ = std::max(workspace_floats_, upconv_workspace_floats(prev.shape, c.filters(l)));
    lay_block(L.dec, L.cat, dec_shape(l, c.filters(l)), nullptr);
    L.dcat = alloc(L.cat.shape);
  }
  head_.in = levels_[0].dec.out();
  logits_ = alloc(conv_output_shape(head_.in.shape, head_.co, head_.spec));
  head_.out = head_.pre = logits_;
  dlogits_ = alloc(logits_.shape);
  for (Slot& s : scratch_) {
    s = Slot{reserved_, 0, {}};
    reserved_ += largest;
  }
  workspace_ = reserved_;
  reserved_ += workspace_floats_;
  arena_.assign(static_cast<size_t>(reserved_), 0.f);
  argmax_.assign(static_cast<size_t>(argmax), 0);
  argmax_bytes_ = argmax;
}

Shape UNet::output_shape() const { return logits_.shape; }

Tensor UNet::view(const Slot& s) {
  if (s.offset < 0) return input_tensor_;
  return Tensor(arena_.data() + s.offset, s.shape, s.stride);
}

UNet::Slot UNet::other_scratch(const Slot& s, const Shape& shape) const {
  const Slot& pick = s.offset == scratch_[0].offset ? scratch_[1] : scratch_[0];
  return Slot{pick.offset, shape.sample(), shape};
}

Tensor UNet::dlogits() { return view(dlogits_); }

void UNet::dropout(const Slot& s, uint64_t site, bool backward) {
  const DropoutSpec spec{config_.dropout, config_.seed, 2 * step_ + site, first_sample_};
  const Tensor t = view(s);
  backward ? dropout_backward(t, t, spec) : dropout_forward(t, t, spec);
}

void UNet::block_forward(Block& b, bool training) {
  float* ws = arena_.data() + workspace_;
  for (ConvLayer& L : b.convs) {
    const Tensor pre = view(L.pre), out = view(L.out);
    conv_forward(view(L.in), params_.data() + L.w, nullptr, pre, L.spec, ws);
    if (config_.norm == NormChoice::none) {
      bias_act_forward(out, params_.data() + L.b, config_.activation);
      continue;
    }
    const NormSpec ns = config_.norm_spec();
    const float* gamma = params_.data() + L.gamma;
    const float* beta = params_.data() + L.beta;
    float* rm = L.running >= 0 ? state_.data() + L.running : nullptr;
    float* rv = L.running >= 0 ? rm + L.co : nullptr;
    if (training)
      norm_forward_train(pre, out, gamma, beta, L.mean.data(), L.invstd.data(), rm, rv, ns, norm_reduce_);
    else
      norm_forward_infer(pre, out, gamma, beta, rm, rv, ns);
    bias_act_forward(out, nullptr, config_.activation);
  }
}

Tensor UNet::forward(const Tensor& input, bool training, uint64_t step) {
  expect_shape("U-Net forward", "input", input.shape, input_);
  input_tensor_ = input;
  step_ = step;
  const bool drop = training && config_.dropout > 0.f;
  const int depth = config_.depth;
  for (int l = 0; l < depth; ++l) {
    Level& L = levels_[l];
    block_forward(L.enc, training);
    if (drop && l == depth - 1) dropout(L.enc_out, 0, false);
    if (L.enc_out.offset != L.cat.offset) crop_forward(view(L.enc_out), view(L.cat.channels(0, config_.filters(l))));
    maxpool_forward(view(L.enc_out), view(L.pooled), argmax_.data() + L.argmax);
  }
  block_forward(bottleneck_, training);
  if (drop) dropout(bottleneck_.out(), 1, false);
  float* ws = arena_.data() + workspace_;
  for (int l = depth - 1; l >= 0; --l) {
    Level& L = levels_[l];
    const Slot& prev = l + 1 < depth ? levels_[l + 1].dec.out() : bottleneck_.out();
    upconv_forward(view(prev), params_.data() + L.up_w, params_.data() + L.up_b,
                   view(L.cat.channels(config_.filters(l), config_.filters(l))), ws);
    block_forward(L.dec, training);
  }
  conv_forward(view(head_.in), params_.data() + head_.w, params_.data() + head_.b, view(logits_), head_.spec, ws);
  return view(logits_);
}

UNet::Slot UNet::block_backward(Block& b, const Slot& dout, const Slot* target, bool need_input_grad) {
  float* ws = arena_.data() + workspace_;
  Slot cur = dout;
  for (size_t j = b.convs.size(); j-- > 0;) {
    ConvLayer& L = b.convs[j];
    const Tensor d = view(cur);
    if (config_.norm == NormChoice::none) {
      bias_act_backward(view(L.out), d, grads_.data() + L.b, config_.activation);
    } else {
      bias_act_backward(view(L.out), d, nullptr, config_.activation);
      norm_backward(view(L.pre), d, d, params_.data() + L.gamma, L.mean.data(), L.invstd.data(),
                    grads_.data() + L.gamma, grads_.data() + L.beta, config_.norm_spec(), norm_reduce_);
    }
    Slot din{};
    const bool want = j > 0 || target || need_input_grad;
    if (want) din = j == 0 && target ? *target : other_scratch(cur, L.in.shape);
    conv_backward(view(L.in), params_.data() + L.w, d, want ? view(din) : Tensor(), grads_.data() + L.w, nullptr,
                  L.spec, GradMode::overwrite, ws);
    if (grads_ready_) grads_ready_(L.w);  // a layer's weight comes first in the table
    cur = din;
  }
  return cur;
}

void UNet::backward(const Tensor& input) {
  expect_shape("U-Net backward", "input", input.shape, input_);
  input_tensor_ = input;
  const int depth = config_.depth;
  float* ws = arena_.data() + workspace_;
  Slot cur = other_scratch(dlogits_, head_.in.shape);
  conv_backward(view(head_.in), params_.data() + head_.w, view(dlogits_), view(cur), grads_.data() + head_.w,
                grads_.data() + head_.b, head_.spec, GradMode::overwrite, ws);
  if (grads_ready_) grads_ready_(head_.w);
  for (int l = 0; l < depth; ++l) {
    Level& L = levels_[l];
    block_backward(L.dec, cur, &L.dcat, true);
    const Slot& prev = l + 1 < depth ? levels_[l + 1].dec.out() : bottleneck_.out();
    cur = other_scratch(L.dcat, prev.shape);
    const int64_t f = config_.filters(l);
    upconv_backward(view(prev), params_.data() + L.up_w, view(L.dcat.channels(f, f)), view(cur),
                    grads_.data() + L.up_w, grads_.data() + L.up_b, GradMode::overwrite, ws);
    if (grads_ready_) grads_ready_(L.up_w);
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
      crop_backward(view(skip), view(dout), GradMode::overwrite);
    }
    maxpool_backward(view(dpooled), argmax_.data() + L.argmax, view(dout), GradMode::accumulate);
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
                    prev.shape.c * f * (config_.dims == 3 ? 8 : 4) + f, double(upconv_macs(prev.shape, f))});
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
