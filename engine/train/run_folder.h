// The run folder, the one owner of every path of a training run:
//   run.json, config.ini                      what was run, and the options as --config reads them
//   last.safetensors, last.state.safetensors  weights; optimizer moments, step, early-stopping and loss-scaling state
//   best.safetensors                          weights of the best validation mean foreground Dice,
//                                             for prediction (no deep supervision heads)
//   metrics.jsonl                             one JSON line per logged step and per validation
// Every file but the log is written atomically, and the state goes after the
// weights: a state file never points at weights older than itself.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/model/unet_model.h"

namespace unet {

// What last.state.safetensors holds beside the weights.
struct TrainState {
  int64_t step = 0;
  double best = -1;          // best mean foreground Dice so far
  int64_t bad_validations = 0;
  float loss_scale = 0;      // dynamic loss scaling's scale and finite steps (0: not scaling)
  int64_t good_steps = 0;
  std::vector<float> m, v;   // the optimizer's moments, host copies
};

class RunFolder {
 public:
  explicit RunFolder(std::string dir) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& name) const;
  bool has_checkpoint() const;

  // The resume decision, before any work: a folder with a checkpoint is
  // resumed; --resume without one, or --load-weights into one, is refused.
  // Creates the folder.
  void start(bool resume_required, bool loading_weights) const;

  void write(const std::string& name, const std::string& bytes) const;  // atomically
  void append_metrics(const nlohmann::json& line) const;

  void save_checkpoint(const UNet& model, const TrainState& state,
                       const std::map<std::string, std::string>& metadata) const;
  // False when there is no checkpoint; throws FileError for one of another
  // model or a damaged one. state.m and .v must have the model's size.
  bool load_checkpoint(UNet& model, TrainState& state) const;
  void save_best(const UNet& model, const std::map<std::string, std::string>& metadata) const;
  // Loads best.safetensors into the model when there is one.
  bool load_best(UNet& model) const;

 private:
  std::string dir_;
};

}  // namespace unet
