#include "engine/train/run_folder.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "engine/storage/checkpoint.h"

namespace unet {
namespace {

namespace fs = std::filesystem;

constexpr const char* kWeights = "last.safetensors";
constexpr const char* kState = "last.state.safetensors";
constexpr const char* kBest = "best.safetensors";

}  // namespace

std::string RunFolder::path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

bool RunFolder::has_checkpoint() const { return fs::exists(path(kState)); }

void RunFolder::start(bool resume_required, bool loading_weights) const {
  const bool resuming = has_checkpoint();
  if (resume_required && !resuming)
    throw std::invalid_argument("--resume: " + dir_ + " holds no checkpoint (" + kState + ") to resume");
  if (resuming && loading_weights)
    throw std::invalid_argument("--load-weights: " + dir_ + " already holds a checkpoint, which would replace them; "
                                "use a new --run-dir to start from other weights");
  fs::create_directories(dir_);
}

void RunFolder::write(const std::string& name, const std::string& bytes) const { write_file_atomic(path(name), bytes); }

void RunFolder::append_metrics(const nlohmann::json& line) const {
  const std::string log = path("metrics.jsonl");
  std::ofstream f(log, std::ios::app);
  f << line.dump() << '\n';
  if (!f) throw FileError(log + ": cannot append to the metrics log");
}

void RunFolder::save_checkpoint(const UNet& model, const TrainState& s,
                                const std::map<std::string, std::string>& metadata) const {
  save_weights(path(kWeights), model, metadata);
  Safetensors f;
  f.metadata = {{"step", std::to_string(s.step)},
                {"best", nlohmann::json(s.best).dump()},
                {"bad_validations", std::to_string(s.bad_validations)},
                {"loss_scale", nlohmann::json(s.loss_scale).dump()},
                {"good_steps", std::to_string(s.good_steps)},
                {"unet.config", config_to_json(model.config())}};
  f.tensors.push_back({"optimizer.m", {static_cast<int64_t>(s.m.size())}, s.m});
  f.tensors.push_back({"optimizer.v", {static_cast<int64_t>(s.v.size())}, s.v});
  write_safetensors(path(kState), f);
}

bool RunFolder::load_checkpoint(UNet& model, TrainState& s) const {
  const std::string wpath = path(kWeights), spath = path(kState);
  if (!has_checkpoint()) return false;
  const Safetensors weights = read_safetensors(wpath), state = read_safetensors(spath);
  const std::string stored = config_to_json(stored_config(weights, wpath)), ours = config_to_json(model.config());
  if (stored != ours)
    throw FileError(wpath + ": the run folder holds a checkpoint of another model (" +
                    stored_config(weights, wpath).str() + "); this run asks for " + model.config().str() +
                    ". Use another --run-dir, or the same model options to resume");
  load_weights(model, weights, wpath);
  try {
    s.step = std::stoll(state.metadata.at("step"));
    s.best = nlohmann::json::parse(state.metadata.at("best")).get<double>();
    s.bad_validations = std::stoll(state.metadata.at("bad_validations"));
    if (state.metadata.count("loss_scale")) {  // optional: a state file without it restores no loss-scaling state
      s.loss_scale = nlohmann::json::parse(state.metadata.at("loss_scale")).get<float>();
      s.good_steps = std::stoll(state.metadata.at("good_steps"));
    }
  } catch (const std::exception& e) {
    throw FileError(spath + ": training state metadata incomplete (" + e.what() + ")");
  }
  for (auto [name, dst] : {std::pair{"optimizer.m", &s.m}, std::pair{"optimizer.v", &s.v}}) {
    const NamedTensor* t = state.find(name);
    if (!t || t->values.size() != dst->size())
      throw FileError(spath + ": " + name + " is missing or does not match the model's " +
                      std::to_string(dst->size()) + " parameters");
    *dst = t->values;
  }
  return true;
}

void RunFolder::save_best(const UNet& model, const std::map<std::string, std::string>& metadata) const {
  save_weights(path(kBest), model, metadata, WeightsFor::prediction);
}

bool RunFolder::load_best(UNet& model) const {
  const std::string best = path(kBest);
  if (!fs::exists(best)) return false;
  load_weights(model, read_safetensors(best), best);
  return true;
}

}  // namespace unet
