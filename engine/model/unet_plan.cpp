// Planning a U-Net for an input shape: the sizes of every level, the arena's
// layout (offsets only, so that a layout can be tried for another batch), the
// backend's plan of each convolution, and the error when the plan does not fit.
#include <algorithm>
#include <array>
#include <stdexcept>
#include <string>

#include "engine/device/ops.h"
#include "engine/model/unet_model.h"
#include "kernels/maxpool.h"

namespace unet {
namespace {

// Sizes along one axis through the net; 0 where the axis does not pass.
struct AxisPlan {
  std::vector<int64_t> enc, dec;  // encoder output and decoder output per level
  int64_t bottleneck = 0;
  std::string failure;            // empty when the size passes
};

// The windows of one axis (0 depth, 1 height, 2 width), per level.
std::vector<int64_t> axis_factors(const UNetConfig& c, int axis) {
  std::vector<int64_t> f;
  for (int l = 0; l < c.depth; ++l) {
    const PoolWindow w = c.window(l);
    f.push_back(axis == 0 ? w.d : axis == 1 ? w.h : w.w);
  }
  return f;
}

AxisPlan plan_axis(int64_t size, const UNetConfig& c, const std::vector<int64_t>& factors) {
  AxisPlan p;
  const int64_t shrink = c.padding == Padding::valid ? int64_t(c.convs_per_level) * (c.kernel - 1) : 0;
  int64_t s = size;
  for (int l = 0; l < c.depth; ++l) {
    const int64_t e = s - shrink, f = factors[l];
    if (e < 1 || e % f) {
      p.failure = "level " + std::to_string(l) +
                  (e < 1 ? " would be " + std::to_string(e) + " wide"
                         : " would pool " + std::to_string(e) + " (not an even size >= 2)");
      return p;
    }
    p.enc.push_back(e);
    s = e / f;
  }
  p.bottleneck = s - shrink;
  if (p.bottleneck < 1) {
    p.failure = "the bottleneck would be " + std::to_string(p.bottleneck) + " wide";
    return p;
  }
  p.dec.resize(c.depth);
  s = p.bottleneck;
  for (int l = c.depth - 1; l >= 0; --l) {
    s = factors[l] * s - shrink;
    if (s < 1) {
      p.failure = "decoder level " + std::to_string(l) + " would be " + std::to_string(s) + " wide";
      return p;
    }
    p.dec[l] = s;
  }
  return p;
}

// The nearest sizes below and above `size` that pass, for the error message.
std::string nearest_sizes(int64_t size, const UNetConfig& c, const std::vector<int64_t>& factors) {
  std::string out;
  for (int64_t s = size - 1; s >= 1; --s)
    if (plan_axis(s, c, factors).failure.empty()) {
      out = std::to_string(s);
      break;
    }
  for (int64_t s = size + 1; s < size + 4096; ++s)
    if (plan_axis(s, c, factors).failure.empty())
      return out.empty() ? std::to_string(s) : out + " or " + std::to_string(s);
  return out;
}

// The shapes of every level for one input, along depth, height and width (a 2D
// net's depth stays 1). Throws std::invalid_argument naming the axis that fails
// and the nearest sizes that pass.
class LevelSizes {
 public:
  LevelSizes(const Shape& input, const UNetConfig& c) : input_(input), c_(c) {
    const std::array<int64_t, 3> sizes = input.grid();
    const char* names[3] = {"depth", "height", "width"};
    for (int a = c.dims == 2 ? 1 : 0; a < 3; ++a) {
      const std::vector<int64_t> factors = axis_factors(c, a);
      int64_t divisor = 1;
      for (int64_t f : factors) divisor *= f;
      axes_[a] = plan_axis(sizes[a], c, factors);
      if (!axes_[a].failure.empty())
        throw std::invalid_argument("input " + std::string(names[a]) + " " + std::to_string(sizes[a]) +
                                    " cannot pass through the U-Net (" + axes_[a].failure + "); " +
                                    (c.padding == Padding::same
                                         ? "it must divide by " + std::to_string(divisor) + " (its poolings): "
                                         : "") +
                                    "the nearest sizes that work are " + nearest_sizes(sizes[a], c, factors));
    }
  }
  Shape enc(int l, int64_t ch) const { return at(ch, [l](const AxisPlan& p) { return p.enc[l]; }); }
  Shape dec(int l, int64_t ch) const { return at(ch, [l](const AxisPlan& p) { return p.dec[l]; }); }
  Shape bottleneck(int64_t ch) const { return at(ch, [](const AxisPlan& p) { return p.bottleneck; }); }
  // The up-convolution's output at level l: the level below's times the window.
  Shape up(int l, int64_t ch) const {
    Shape s = at(ch, [l, this](const AxisPlan& p) { return l + 1 < c_.depth ? p.dec[l + 1] : p.bottleneck; });
    const PoolWindow w = window_for(s, c_.window(l));
    s.d *= w.d, s.h *= w.h, s.w *= w.w;
    return s;
  }

 private:
  template <class Size>
  Shape at(int64_t ch, Size size) const {
    Shape s = input_;
    s.c = ch;
    s.d = input_.dims == 2 ? 1 : size(axes_[0]);
    s.h = size(axes_[1]), s.w = size(axes_[2]);
    return s;
  }
  Shape input_;
  const UNetConfig& c_;
  AxisPlan axes_[3];
};

}  // namespace

int64_t UNet::layout_bytes(const Shape& input) {
  lay_out(input);
  const Shape& out = logits_.shape;
  const int64_t staging =
      backend_->separate_memory()
          ? 2 * (input.count() * int64_t(sizeof(float)) + out.n * out.spatial() * int64_t(sizeof(int32_t)))
          : 0;
  return reserved_ + argmax_count_ + staging;
}

int64_t UNet::plan_bytes(const Shape& input) {
  release_plan();
  const int64_t bytes = layout_bytes(input);
  plan_convolutions();
  return bytes + workspace_bytes_;
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

// Every buffer starts on a 256-byte boundary, as vectorized and tensor-core
// kernels like their operands.
int64_t UNet::arena_offset(int64_t bytes) {
  reserved_ = (reserved_ + 255) / 256 * 256;
  const int64_t offset = reserved_;
  reserved_ += bytes;
  return offset;
}

UNet::Slot UNet::alloc(const Shape& s, DType type) {
  largest_ = std::max(largest_, s.count());
  return Slot{arena_offset(s.count() * dtype_bytes(type)), s.sample(), s, type};
}

UNet::Slot UNet::lay_block(int first, const Slot& in, const Shape& out_shape, const Slot* out) {
  const UNetConfig& c = config_;
  Slot cur = in;
  for (int j = first; j < first + c.convs_per_level; ++j) {
    Layer& L = layers_[j];
    L.in = cur;
    const Shape s = conv_output_shape(cur.shape, L.co, L.spec);
    const bool last = j + 1 == first + c.convs_per_level;
    if (last) expect_shape("U-Net plan", L.name.c_str(), s, out_shape);
    L.out = last && out ? *out : alloc(s, act_);
    L.pre = c.norm == NormChoice::none ? L.out : alloc(s, act_);
    if (c.norm != NormChoice::none) {
      const int64_t groups = norm_groups(c.norm_spec().kind, s);
      L.stats = arena_offset(2 * groups * int64_t(sizeof(float)));
      norm_groups_ = std::max(norm_groups_, groups);
    }
    cur = L.out;
  }
  return cur;
}

void UNet::lay_out(const Shape& input) {
  const UNetConfig& c = config_;
  if (input.dims != c.dims || input.c != c.in_channels || input.n < 1)
    throw std::invalid_argument("input " + input.str() + " does not fit a " + c.str());
  const LevelSizes sizes(input, c);
  reserved_ = norm_groups_ = workspace_bytes_ = largest_ = 0;
  act_ = backend_->activation_type();
  // The caller's fp32 input; under mixed precision its 16-bit copy in the arena.
  const Slot caller_input{-1, input.sample(), input, DType::f32};
  input_copy_ = act_ == DType::f32 ? caller_input : alloc(input, act_);
  Slot cur = input_copy_;
  int64_t argmax = 0;
  for (int l = 0; l < c.depth; ++l) {
    Layer &cat = layers_[levels_[l].cat], &pool = layers_[levels_[l].pool];
    const int64_t f = c.filters(l);
    cat.out = alloc(sizes.up(l, 2 * f), act_);
    // "same" padding: the encoder writes its output straight into the skip half.
    const Slot skip = cat.out.channels(0, f);
    const Shape eo = sizes.enc(l, f);
    if (!cat.crop) expect_shape("U-Net plan", cat.name.c_str(), skip.shape, eo);
    cat.in = pool.in = lay_block(levels_[l].enc, cur, eo, cat.crop ? nullptr : &skip);
    pool.out = alloc(maxpool_output_shape(eo, pool.window), act_);
    pool.argmax = argmax;
    argmax += pool.out.shape.count();
    cur = pool.out;
  }
  cur = lay_block(bottleneck_, cur, sizes.bottleneck(c.filters(c.depth)), nullptr);
  for (int l = c.depth - 1; l >= 0; --l) {
    Level& V = levels_[l];
    Layer &up = layers_[V.up], &cat = layers_[V.cat];
    up.in = cur;
    up.out = cat.out.channels(c.filters(l), c.filters(l));
    workspace_bytes_ = std::max(workspace_bytes_, ops::upconv_workspace_bytes(*backend_, cur.shape, up.co, up.window));
    cur = lay_block(V.dec, cat.out, sizes.dec(l, c.filters(l)), nullptr);
    V.dcat = alloc(cat.out.shape, act_);
    V.stride = {1, 1, 1};
    for (int j = 0; j < l; ++j) {
      const PoolWindow w = window_for(input, c.window(j));
      V.stride[0] *= w.d, V.stride[1] *= w.h, V.stride[2] *= w.w;
    }
    if (V.deep >= 0) lay_deep_head(V, cur);
  }
  Layer& head = layers_[head_];
  head.in = cur;
  // The loss reads fp32 logits and writes an fp32 gradient; under mixed
  // precision the head computes 16-bit ones, converted at the pass's edges.
  const Shape logits = conv_output_shape(head.in.shape, head.co, head.spec);
  logits_ = alloc(logits, DType::f32);
  dlogits_ = alloc(logits, DType::f32);
  head.out = head.pre = act_ == DType::f32 ? logits_ : alloc(logits, act_);
  dhead_ = act_ == DType::f32 ? dlogits_ : alloc(logits, act_);
  for (Slot& s : scratch_) s = Slot{arena_offset(largest_ * dtype_bytes(act_)), 0, {}, act_};
  largest_ = std::max(largest_, input.count());  // the input goes to a convolution too
  argmax_count_ = argmax;
}

// Its input, its fp32 logits and their gradient (16-bit copies under mixed
// precision, as the main head's), and its labels.
void UNet::lay_deep_head(Level& V, const Slot& in) {
  Layer& D = layers_[V.deep];
  D.in = in;
  const Shape logits = conv_output_shape(in.shape, D.co, D.spec);
  V.deep_logits = alloc(logits, DType::f32);
  V.deep_dlogits = alloc(logits, DType::f32);
  D.out = D.pre = act_ == DType::f32 ? V.deep_logits : alloc(logits, act_);
  V.deep_dhead = act_ == DType::f32 ? V.deep_dlogits : alloc(logits, act_);
  V.deep_labels = arena_offset(logits.n * logits.spatial() * int64_t(sizeof(int32_t)));
}

void UNet::plan_convolutions() {
  for (Layer& L : layers_) {
    if (L.kind != LayerKind::conv && L.kind != LayerKind::head && L.kind != LayerKind::deep_head) continue;
    // Forward writes y = pre, backward reads dy where the block's gradient lies
    // (out's layout: the skip half of a concatenation for an encoder's last conv).
    L.conv = ops::plan_conv(*backend_, L.in.shape, L.co, L.spec, {L.in.stride, L.pre.stride, L.out.stride});
    workspace_bytes_ = std::max(workspace_bytes_, ops::conv_workspace_bytes(*backend_, L.conv));
  }
}

}  // namespace unet
