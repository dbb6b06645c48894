#include "engine/storage/checkpoint.h"

#include <algorithm>
#include <set>
#include <nlohmann/json.hpp>

namespace unet {
namespace {

template <class T, size_t N>
T field_choice(const Choice<T> (&table)[N], const nlohmann::json& j, const std::string& field, const std::string& where) {
  const std::string v = j.at(field);
  if (const std::optional<T> c = find_choice(table, v)) return *c;
  throw FileError(where + ": model configuration field " + field + " = \"" + v + "\" is not one we know (expected " +
                  choice_names(table) + ")");
}

// The running statistics that ride along with the parameters: (name, state offset, count).
struct StateEntry {
  std::string name;
  int64_t offset, count;
};
std::vector<StateEntry> state_entries(const UNet& model) {
  std::vector<StateEntry> out;
  const auto& table = model.param_table();
  int64_t offset = 0;
  for (const ParamInfo& p : table) {
    const std::string suffix = ".norm.weight";
    if (model.config().norm != NormChoice::batch || p.name.size() < suffix.size() ||
        p.name.compare(p.name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string layer = p.name.substr(0, p.name.size() - 6);  // through "norm."
    out.push_back({layer + "running_mean", offset, p.count});
    out.push_back({layer + "running_var", offset + p.count, p.count});
    offset += 2 * p.count;
  }
  return out;
}

}  // namespace

std::string config_to_json(const UNetConfig& c) {
  nlohmann::json j{{"dims", c.dims},
                   {"depth", c.depth},
                   {"start_filters", c.start_filters},
                   {"convs_per_level", c.convs_per_level},
                   {"kernel", c.kernel},
                   {"norm", choice_name(kNormChoices, c.norm)},
                   {"dropout", c.dropout},
                   {"padding", choice_name(kPaddings, c.padding)},
                   {"in_channels", c.in_channels},
                   {"classes", c.classes},
                   {"head", choice_name(kHeads, c.head)},
                   {"activation", choice_name(kActivations, c.activation.kind)},
                   {"activation_slope", c.activation.slope},
                   {"seed", c.seed}};
  if (c.max_filters > 0) j["max_filters"] = c.max_filters;  // absent: no cap, as in files written before it
  if (!c.pooling.empty()) j["pooling"] = pooling_text(c.pooling, c.dims);  // absent: 2 along every axis
  if (c.deep_supervision) j["deep_supervision"] = true;
  return j.dump();
}

UNetConfig config_from_json(const std::string& text, const std::string& where) {
  UNetConfig c;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    c.dims = j.at("dims");
    c.depth = j.at("depth");
    c.start_filters = j.at("start_filters");
    c.max_filters = j.value("max_filters", 0);
    if (j.contains("pooling")) c.pooling = parse_pooling(j.at("pooling").get<std::string>(), c.dims);
    c.deep_supervision = j.value("deep_supervision", false);
    c.convs_per_level = j.at("convs_per_level");
    c.kernel = j.at("kernel");
    c.norm = field_choice(kNormChoices, j, "norm", where);
    c.dropout = j.at("dropout");
    c.padding = field_choice(kPaddings, j, "padding", where);
    c.in_channels = j.at("in_channels");
    c.classes = j.at("classes");
    c.head = field_choice(kHeads, j, "head", where);
    c.activation = {field_choice(kActivations, j, "activation", where),
                    j.at("activation_slope").get<float>()};
    c.seed = j.at("seed");
  } catch (const nlohmann::json::exception& e) {
    throw FileError(where + ": the model configuration is incomplete or malformed (" + e.what() + ")");
  } catch (const std::invalid_argument& e) {  // the pooling's text
    throw FileError(where + ": " + e.what());
  }
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw FileError(where + ": " + e.what());
  }
  return c;
}

namespace {

// The parameter offsets of the deep supervision heads.
std::set<int64_t> deep_head_params(const UNet& model) {
  std::set<int64_t> out;
  for (const UNet::Layer& L : model.layers())
    if (L.kind == UNet::LayerKind::deep_head) out.insert({L.w, L.b});
  return out;
}

}  // namespace

Safetensors weights_of(const UNet& model, std::map<std::string, std::string> metadata, WeightsFor use) {
  Safetensors f;
  f.metadata = std::move(metadata);
  f.metadata["format"] = "pt";
  UNetConfig config = model.config();
  const std::set<int64_t> left_out = use == WeightsFor::prediction ? deep_head_params(model) : std::set<int64_t>{};
  if (use == WeightsFor::prediction) config.deep_supervision = false;
  f.metadata["unet.config"] = config_to_json(config);
  model.copy_to_host();  // from the GPU, where the model trains there
  for (const ParamInfo& p : model.param_table())
    if (!left_out.count(p.offset))
      f.tensors.push_back({p.name, p.shape, {model.params() + p.offset, model.params() + p.offset + p.count}});
  const std::vector<float>& state = model.state();
  for (const StateEntry& s : state_entries(model))
    f.tensors.push_back({s.name, {s.count}, {state.begin() + s.offset, state.begin() + s.offset + s.count}});
  return f;
}

void save_weights(const std::string& path, const UNet& model, std::map<std::string, std::string> metadata,
                  WeightsFor use) {
  write_safetensors(path, weights_of(model, std::move(metadata), use));
}

UNetConfig stored_config(const Safetensors& file, const std::string& path) {
  const auto it = file.metadata.find("unet.config");
  if (it == file.metadata.end())
    throw FileError(path + ": no unet.config in the metadata: not a weights file written by unet");
  return config_from_json(it->second, path);
}

void load_weights(UNet& model, const Safetensors& file, const std::string& path) {
  const std::set<int64_t> optional = deep_head_params(model);
  auto copy = [&](const std::string& name, const std::vector<int64_t>& shape, float* dst, bool required) {
    const NamedTensor* t = file.find(name);
    if (!t && !required) return;
    if (!t) throw FileError(path + ": tensor " + name + " is missing (the file holds another model?)");
    if (t->shape != shape) {
      auto str = [](const std::vector<int64_t>& s) {
        std::string o;
        for (int64_t d : s) o += (o.empty() ? "" : "x") + std::to_string(d);
        return o;
      };
      throw FileError(path + ": tensor " + name + " has shape " + str(t->shape) + ", the model expects " +
                      str(shape));
    }
    std::copy(t->values.begin(), t->values.end(), dst);
  };
  for (const ParamInfo& p : model.param_table())
    copy(p.name, p.shape, model.params() + p.offset, !optional.count(p.offset));
  for (const StateEntry& s : state_entries(model)) copy(s.name, {s.count}, model.state().data() + s.offset, true);
  model.copy_to_device();
}

std::unique_ptr<UNet> open_model(const Safetensors& file, const std::string& path) {
  auto model = std::make_unique<UNet>(stored_config(file, path));
  load_weights(*model, file, path);
  return model;
}

}  // namespace unet
