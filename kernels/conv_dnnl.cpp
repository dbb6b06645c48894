#include "kernels/conv_dnnl.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/base/parallel.h"

namespace unet {
namespace {

using dnnl::memory;
using Dims = memory::dims;

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// The CPU stream runs each primitive to its end before execute() returns.
dnnl::stream& cpu_stream() {
  static dnnl::stream stream(cpu_engine());
  return stream;
}

memory::data_type data_type(DType t) { return t == DType::bf16 ? memory::data_type::bf16 : memory::data_type::f32; }

Dims dims_of(const Shape& s) { return s.dims == 3 ? Dims{s.n, s.c, s.d, s.h, s.w} : Dims{s.n, s.c, s.h, s.w}; }

// The engine's layout: fp32 channel planes, samples `stride` elements apart (0: packed).
memory::desc engine_layout(const Shape& s, int64_t stride) {
  const int64_t n = stride ? stride : s.sample();
  const Dims strides = s.dims == 3 ? Dims{n, s.spatial(), s.h * s.w, s.w, 1} : Dims{n, s.spatial(), s.w, 1};
  return memory::desc(dims_of(s), memory::data_type::f32, strides);
}

memory::desc any_layout(const Dims& dims, DType type) {
  return memory::desc(dims, data_type(type), memory::format_tag::any);
}

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

size_t aligned(size_t bytes) { return (bytes + 63) / 64 * 64; }

// One operand of a primitive: where the engine keeps it, the layout the kernel
// wants, and the reorder between them (none where they are the same), in its
// region of the workspace. `add`: the result is added into the engine's
// buffer (a reorder with a sum, through the region even where the layouts agree).
struct Operand {
  memory::desc outside, inside;
  std::optional<dnnl::reorder> move;
  size_t offset = 0, scratch = 0;  // its region in the workspace; the reorder's scratchpad

  Operand() = default;
  Operand(const memory::desc& engine_md, const memory::desc& kernel_md, bool incoming, bool add = false)
      : outside(engine_md), inside(kernel_md) {
    if (!add && outside == inside) return;
    dnnl::primitive_attr attr = user_scratchpad();
    if (add) {
      dnnl::post_ops sum;
      sum.append_sum(1.f);
      attr.set_post_ops(sum);
    }
    dnnl::engine& e = cpu_engine();
    const dnnl::reorder::primitive_desc pd = incoming ? dnnl::reorder::primitive_desc(e, outside, e, inside, attr)
                                                      : dnnl::reorder::primitive_desc(e, inside, e, outside, attr);
    move = dnnl::reorder(pd);
    scratch = pd.scratchpad_desc().get_size();
  }
  size_t bytes() const { return move ? inside.get_size() : 0; }


  // The operand in the kernel's layout, reordered from `data` where it must be.
  memory in(const void* data, char* workspace, const memory& scratch) const {
    memory engine_mem(outside, cpu_engine(), const_cast<void*>(data));
    if (!move) return engine_mem;
    memory kernel_mem(inside, cpu_engine(), workspace + offset);
    move->execute(cpu_stream(), {{DNNL_ARG_FROM, engine_mem}, {DNNL_ARG_TO, kernel_mem}, {DNNL_ARG_SCRATCHPAD, scratch}});
    return kernel_mem;
  }
  // Where the kernel writes a result bound for `data`; out() then moves it there.
  memory target(void* data, char* workspace) const {
    return move ? memory(inside, cpu_engine(), workspace + offset) : memory(outside, cpu_engine(), data);
  }
  void out(const memory& kernel_mem, void* data, const memory& scratch) const {
    if (!move) return;
    memory engine_mem(outside, cpu_engine(), data);
    move->execute(cpu_stream(), {{DNNL_ARG_FROM, kernel_mem}, {DNNL_ARG_TO, engine_mem}, {DNNL_ARG_SCRATCHPAD, scratch}});
  }
};

size_t scratch_bytes(const dnnl::primitive_desc_base& pd) { return pd.scratchpad_desc().get_size(); }

}  // namespace

struct ConvDnnl::Impl {
  Shape in, out;
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data bwd_data;
  dnnl::convolution_backward_weights bwd_weights;
  std::vector<std::string> kernels;
  // Forward: x, w in; y out. Data gradient: dy, w in; dx out (overwritten or
  // added). Weight gradient: x, dy in; dw added.
  Operand fwd_x, fwd_w, fwd_y, data_dy, data_w, data_dx, data_dx_add, weights_x, weights_dy, weights_dw;
  bool shared_dy = false;  // both gradients read dy in one layout: it is reordered once
  std::vector<float> no_bias;  // zeros: the primitive always adds a bias
  memory::desc scratch_md;     // oneDNN's scratchpad, at the workspace's start
  size_t bytes = 0;

  memory scratch(char* workspace) const { return memory(scratch_md, cpu_engine(), workspace); }
};

ConvDnnl::ConvDnnl(const Shape& in, int64_t out_channels, const ConvSpec& spec, ConvStrides strides, DType type)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.in = in;
  m.out = conv_output_shape(in, out_channels, spec);  // validates the spec
  m.no_bias.assign(size_t(out_channels), 0.f);
  const int spatial = in.dims;
  const int64_t pad = spec.padding == Padding::same ? spec.kernel / 2 : 0;
  const Dims ones(spatial, 1), padding(spatial, pad);
  Dims wdims{out_channels, in.c};
  for (int d = 0; d < spatial; ++d) wdims.push_back(spec.kernel);
  const memory::desc w_engine(wdims, memory::data_type::f32,
                              spatial == 3 ? memory::format_tag::oidhw : memory::format_tag::oihw);
  const memory::desc bias(Dims{out_channels}, memory::data_type::f32, memory::format_tag::x);
  const memory::desc x_engine = engine_layout(in, strides.x), y_engine = engine_layout(m.out, strides.y),
                     dy_engine = engine_layout(m.out, strides.dy), dx_engine = engine_layout(in, 0);
  const memory::desc x_any = any_layout(dims_of(in), type), y_any = any_layout(dims_of(m.out), type),
                     w_any = any_layout(wdims, type), dx_any = any_layout(dims_of(in), type),
                     dw_any = any_layout(wdims, DType::f32);
  const auto direct = dnnl::algorithm::convolution_direct;
  try {
    dnnl::engine& e = cpu_engine();
    const dnnl::primitive_attr attr = user_scratchpad();
    const dnnl::convolution_forward::primitive_desc fwd(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, direct, x_any, w_any, bias, y_any, ones,
                                        padding, padding),
        attr, e);
    const dnnl::convolution_backward_data::primitive_desc data(
        dnnl::convolution_backward_data::desc(direct, dx_any, w_any, y_any, ones, padding, padding), attr, e, fwd);
    const dnnl::convolution_backward_weights::primitive_desc weights(
        dnnl::convolution_backward_weights::desc(direct, x_any, dw_any, y_any, ones, padding, padding), attr, e, fwd);
    m.fwd = dnnl::convolution_forward(fwd);
    m.bwd_data = dnnl::convolution_backward_data(data);
    m.bwd_weights = dnnl::convolution_backward_weights(weights);
    m.kernels = {fwd.impl_info_str(), data.impl_info_str(), weights.impl_info_str()};
    m.fwd_x = Operand(x_engine, fwd.src_desc(), true);
    m.fwd_w = Operand(w_engine, fwd.weights_desc(), true);
    m.fwd_y = Operand(y_engine, fwd.dst_desc(), false);
    m.data_dy = Operand(dy_engine, data.diff_dst_desc(), true);
    m.data_w = Operand(w_engine, data.weights_desc(), true);
    m.data_dx = Operand(dx_engine, data.diff_src_desc(), false);
    m.data_dx_add = Operand(dx_engine, data.diff_src_desc(), false, true);
    m.weights_x = Operand(x_engine, weights.src_desc(), true);
    m.weights_dy = Operand(dy_engine, weights.diff_dst_desc(), true);
    m.weights_dw = Operand(w_engine, weights.diff_weights_desc(), false, true);
    // The regions, after the scratchpad: the forward pass, the data gradient
    // and the weight gradient run one after another, each to its end, so the
    // three share one room.
    size_t scratch = std::max({scratch_bytes(fwd), scratch_bytes(data), scratch_bytes(weights)});
    for (const Operand* o : {&m.fwd_x, &m.fwd_w, &m.fwd_y, &m.data_dy, &m.data_w, &m.data_dx, &m.data_dx_add,
                             &m.weights_x, &m.weights_dy, &m.weights_dw})
      scratch = std::max(scratch, o->scratch);
    m.scratch_md = memory::desc(Dims{int64_t(std::max<size_t>(scratch, 1))}, memory::data_type::u8, memory::format_tag::x);
    auto place = [&m, scratch](std::initializer_list<Operand*> group) {
      size_t at = aligned(scratch);
      for (Operand* o : group) o->offset = at, at += aligned(o->bytes());
      m.bytes = std::max(m.bytes, at);
    };
    place({&m.fwd_x, &m.fwd_w, &m.fwd_y});
    m.shared_dy = m.data_dy.inside == m.weights_dy.inside;
    if (m.shared_dy) {  // dy stays in its region through both gradients
      place({&m.data_dy, &m.data_w, &m.data_dx, &m.weights_x, &m.weights_dw});
      place({&m.data_dy, &m.data_w, &m.data_dx_add, &m.weights_x, &m.weights_dw});
      m.weights_dy.offset = m.data_dy.offset;
    } else {
      place({&m.data_dy, &m.data_w, &m.data_dx});
      place({&m.data_dy, &m.data_w, &m.data_dx_add});
      place({&m.weights_x, &m.weights_dy, &m.weights_dw});
    }
  } catch (const dnnl::error& e) {
    throw std::runtime_error("conv " + conv_key(in, out_channels, spec, strides) + " in " + dtype_name(type) +
                             ": oneDNN has no kernel for it on this CPU (" + e.what() + ")");
  }
}

ConvDnnl::~ConvDnnl() = default;

size_t ConvDnnl::workspace_bytes() const { return impl_->bytes; }

std::vector<std::string> ConvDnnl::kernels() const { return impl_->kernels; }

void ConvDnnl::forward(const Tensor& x, const float* w, const float* bias, const Tensor& y, void* workspace) const {
  const Impl& m = *impl_;
  expect_shape("conv_forward", "x", x.shape, m.in);
  expect_shape("conv_forward", "output", y.shape, m.out);
  char* ws = static_cast<char*>(workspace);
  const memory scratch = m.scratch(ws);
  const memory y_mem = m.fwd_y.target(y.data, ws);
  const memory bias_mem({{m.out.c}, memory::data_type::f32, memory::format_tag::x}, cpu_engine(),
                        const_cast<float*>(bias ? bias : m.no_bias.data()));
  m.fwd.execute(cpu_stream(), {{DNNL_ARG_SRC, m.fwd_x.in(x.data, ws, scratch)},
                               {DNNL_ARG_WEIGHTS, m.fwd_w.in(w, ws, scratch)},
                               {DNNL_ARG_BIAS, bias_mem},
                               {DNNL_ARG_DST, y_mem},
                               {DNNL_ARG_SCRATCHPAD, scratch}});
  m.fwd_y.out(y_mem, y.data, scratch);
}

void ConvDnnl::backward(const Tensor& x, const float* w, const Tensor& dy, const Tensor& dx, float* dw, float* dbias,
                        GradMode mode, void* workspace) const {
  const Impl& m = *impl_;
  expect_shape("conv_backward", "x", x.shape, m.in);
  expect_shape("conv_backward", "dy", dy.shape, m.out);
  char* ws = static_cast<char*>(workspace);
  const memory scratch = m.scratch(ws);
  std::optional<memory> dy_mem;  // dy in the data gradient's layout, once made
  if (dx.data) {
    expect_shape("conv_backward", "dx", dx.shape, m.in);
    const Operand& to = mode == GradMode::accumulate ? m.data_dx_add : m.data_dx;
    const memory dx_mem = to.target(dx.data, ws);
    dy_mem = m.data_dy.in(dy.data, ws, scratch);
    m.bwd_data.execute(cpu_stream(), {{DNNL_ARG_DIFF_DST, *dy_mem},
                                      {DNNL_ARG_WEIGHTS, m.data_w.in(w, ws, scratch)},
                                      {DNNL_ARG_DIFF_SRC, dx_mem},
                                      {DNNL_ARG_SCRATCHPAD, scratch}});
    to.out(dx_mem, dx.data, scratch);
  }
  const memory dw_mem = m.weights_dw.target(dw, ws);
  m.bwd_weights.execute(cpu_stream(), {{DNNL_ARG_SRC, m.weights_x.in(x.data, ws, scratch)},
                                       {DNNL_ARG_DIFF_DST, dy_mem && m.shared_dy ? *dy_mem : m.weights_dy.in(dy.data, ws, scratch)},
                                       {DNNL_ARG_DIFF_WEIGHTS, dw_mem},
                                       {DNNL_ARG_SCRATCHPAD, scratch}});
  m.weights_dw.out(dw_mem, dw, scratch);
  if (dbias) add_channel_sums(dy, dbias);
}

std::string onednn_version() {
  const dnnl_version_t* v = dnnl::version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

bool cpu_has_bf16_convolutions() {
  static const bool has = [] {
    try {
      ConvDnnl probe(shape2d(1, 16, 8, 8), 16, {3, Padding::same}, {}, DType::bf16);
      return true;
    } catch (const std::runtime_error&) {
      return false;
    }
  }();
  return has;
}

}  // namespace unet
