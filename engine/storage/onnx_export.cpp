#include "engine/storage/onnx_export.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <array>
#include <stdexcept>
#include <vector>

#include "engine/storage/safetensors.h"  // write_file_atomic

namespace unet {
namespace {

using onnx::AttributeProto;
using onnx::TensorProto;

class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto* g) : g_(g) {}

  void initializer(const std::string& name, const std::vector<int64_t>& shape, const float* values) {
    TensorProto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(TensorProto::FLOAT);
    int64_t count = 1;
    for (int64_t d : shape) t->add_dims(d), count *= d;
    // raw_data is little-endian, as the floats of every machine we build for.
    t->set_raw_data(std::string(reinterpret_cast<const char*>(values), static_cast<size_t>(count) * sizeof(float)));
  }
  void ints_initializer(const std::string& name, const std::vector<int64_t>& values) {
    TensorProto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) t->add_int64_data(v);
  }

  // Adds a node whose single output is named `out`; returns it for attributes.
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& inputs, const std::string& out) {
    onnx::NodeProto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(out);
    for (const std::string& i : inputs) n->add_input(i);
    n->add_output(out);
    return n;
  }
  static void ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& values) {
    AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(AttributeProto::INTS);
    for (int64_t v : values) a->add_ints(v);
  }
  static void f(onnx::NodeProto* n, const std::string& name, float value) {
    AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(AttributeProto::FLOAT);
    a->set_f(value);
  }
  static void i(onnx::NodeProto* n, const std::string& name, int64_t value) {
    AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(AttributeProto::INT);
    a->set_i(value);
  }

  // A float tensor value: dimensions > 0 are fixed, the others named.
  static void value_info(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims,
                         const std::vector<std::string>& dim_names) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(TensorProto::FLOAT);
    for (size_t k = 0; k < dims.size(); ++k) {
      auto* d = t->mutable_shape()->add_dim();
      dims[k] > 0 ? d->set_dim_value(dims[k]) : d->set_dim_param(dim_names[k]);
    }
  }

 private:
  onnx::GraphProto* g_;
};

class Exporter {
 public:
  Exporter(const UNet& model, onnx::GraphProto* g) : m_(model), c_(model.config()), b_(g) {}

  // Walks the layer table in forward order; each decoder takes back the
  // encoder output pushed last (a U-Net's skips nest).
  void run() {
    for (const ParamInfo& p : m_.param_table()) b_.initializer(p.name, p.shape, m_.params() + p.offset);
    std::vector<std::string> skips;
    std::string x = "image";
    for (const UNet::Layer& L : m_.layers()) {
      switch (L.kind) {
        case UNet::LayerKind::conv:
          x = conv_norm_act(L, x);
          break;
        case UNet::LayerKind::pool:
          skips.push_back(x);
          x = pool(x, L);
          break;
        case UNet::LayerKind::upconv: {
          auto* n = b_.node("ConvTranspose", {x, L.name + ".weight", L.name + ".bias"}, L.name);
          GraphBuilder::ints(n, "kernel_shape", window(L));
          GraphBuilder::ints(n, "strides", window(L));
          x = L.name;
          break;
        }
        case UNet::LayerKind::concat: {
          std::string skip = skips.back();
          skips.pop_back();
          if (L.crop) skip = crop(skip, L.in.shape, L.out.shape, "crop" + std::to_string(L.level));
          GraphBuilder::i(b_.node("Concat", {skip, x}, L.name), "axis", 1);
          x = L.name;
          break;
        }
        case UNet::LayerKind::head:
          conv(L, x, "logits", true);
          break;
        case UNet::LayerKind::deep_head:  // training only: prediction takes the full-resolution head
          break;
      }
    }
    if (c_.head == Head::sigmoid)
      b_.node("Sigmoid", {"logits"}, "probabilities");
    else
      GraphBuilder::i(b_.node("Softmax", {"logits"}, "probabilities"), "axis", 1);
  }

 private:
  void conv(const UNet::Layer& L, const std::string& in, const std::string& out, bool bias) {
    std::vector<std::string> inputs{in, L.name + ".weight"};
    if (bias) inputs.push_back(L.name + ".bias");
    auto* n = b_.node("Conv", inputs, out);
    GraphBuilder::ints(n, "kernel_shape", std::vector<int64_t>(c_.dims, L.spec.kernel));
    const int64_t pad = L.spec.padding == Padding::same ? L.spec.kernel / 2 : 0;
    GraphBuilder::ints(n, "pads", std::vector<int64_t>(2 * c_.dims, pad));
  }

  std::string conv_norm_act(const UNet::Layer& L, std::string x) {
    const bool norm = c_.norm != NormChoice::none;
    conv(L, x, L.name + ".conv", !norm);
    x = L.name + ".conv";
    if (norm) {
      const std::string p = L.name + ".norm.";
      const float eps = c_.norm_spec().eps;
      if (c_.norm == NormChoice::batch) {
        const float* running = m_.state().data() + L.running;
        b_.initializer(p + "running_mean", {L.co}, running);
        b_.initializer(p + "running_var", {L.co}, running + L.co);
        GraphBuilder::f(b_.node("BatchNormalization",
                                {x, p + "weight", p + "bias", p + "running_mean", p + "running_var"}, L.name + ".norm"),
                        "epsilon", eps);
      } else {
        GraphBuilder::f(b_.node("InstanceNormalization", {x, p + "weight", p + "bias"}, L.name + ".norm"), "epsilon",
                        eps);
      }
      x = L.name + ".norm";
    }
    switch (c_.activation.kind) {
      case Activation::identity:
        break;
      case Activation::relu:
        b_.node("Relu", {x}, L.name);
        x = L.name;
        break;
      case Activation::leaky_relu:
        GraphBuilder::f(b_.node("LeakyRelu", {x}, L.name), "alpha", c_.activation.slope);
        x = L.name;
        break;
    }
    return x;
  }

  // A pooling's or up-convolution's window, [D,] H, W as ONNX orders the axes.
  std::vector<int64_t> window(const UNet::Layer& L) const {
    if (c_.dims == 3) return {L.window.d, L.window.h, L.window.w};
    return {L.window.h, L.window.w};
  }

  std::string pool(const std::string& x, const UNet::Layer& L) {
    auto* n = b_.node("MaxPool", {x}, L.name);
    GraphBuilder::ints(n, "kernel_shape", window(L));
    GraphBuilder::ints(n, "strides", window(L));
    return L.name;
  }

  // The centre crop of crop_forward: starts at (in - out) / 2 on each spatial axis.
  std::string crop(const std::string& x, const Shape& in, const Shape& out, const std::string& name) {
    std::vector<int64_t> starts, ends, axes;
    const std::array<int64_t, 3> si = in.grid(), so = out.grid();
    for (int a = 3 - c_.dims; a < 3; ++a) {
      starts.push_back((si[a] - so[a]) / 2);
      ends.push_back(starts.back() + so[a]);
      axes.push_back(2 + a - (3 - c_.dims));
    }
    b_.ints_initializer(name + ".starts", starts);
    b_.ints_initializer(name + ".ends", ends);
    b_.ints_initializer(name + ".axes", axes);
    b_.node("Slice", {x, name + ".starts", name + ".ends", name + ".axes"}, name);
    return name;
  }

  const UNet& m_;
  const UNetConfig& c_;
  GraphBuilder b_;
};

}  // namespace

std::string onnx_model_bytes(const UNet& model, const std::map<std::string, std::string>& metadata) {
  const Shape& in = model.input_shape();
  if (in.n == 0) throw std::logic_error("onnx_model_bytes: the model has not been planned");
  const UNetConfig& c = model.config();
  onnx::ModelProto m;
  m.set_ir_version(onnx::IR_VERSION);
  m.set_producer_name("unet.cu");
  m.set_producer_version(UNET_VERSION);
  m.set_doc_string("U-Net " + c.str());
  onnx::OperatorSetIdProto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  for (const auto& [key, value] : metadata) {
    auto* p = m.add_metadata_props();
    p->set_key(key);
    p->set_value(value);
  }
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("unet");
  Exporter(model, g).run();

  // A "same" U-Net keeps its input's size and takes any; a "valid" one is fixed.
  const bool fixed = c.padding == Padding::valid;
  const Shape out = model.output_shape();
  std::vector<int64_t> in_dims{0, c.in_channels}, out_dims{0, c.out_channels()};
  const std::array<int64_t, 3> si = in.grid(), so = out.grid();
  std::vector<std::string> names{"batch", "channels"};
  for (int a = 3 - c.dims; a < 3; ++a) {
    in_dims.push_back(fixed ? si[a] : 0);
    out_dims.push_back(fixed ? so[a] : 0);
    names.push_back(a == 0 ? "depth" : a == 1 ? "height" : "width");
  }
  GraphBuilder::value_info(g->add_input(), "image", in_dims, names);
  GraphBuilder::value_info(g->add_output(), "logits", out_dims, names);
  GraphBuilder::value_info(g->add_output(), "probabilities", out_dims, names);

  onnx::checker::check_model(m);  // throws ValidationError naming the node
  std::string bytes;
  if (!m.SerializeToString(&bytes)) throw std::runtime_error("ONNX: the model does not serialize");
  return bytes;
}

void export_onnx(const std::string& path, const UNet& model, const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, onnx_model_bytes(model, metadata));
}

}  // namespace unet
