// The run folder, the one owner of every path of a training run:
//   run.json, config.ini       what was run, and the options as --config reads them
//   checkpoints/step-000090/   a checkpoint, one unit: weights.safetensors and
//                              state.safetensors (optimizer moments, step,
//                              early-stopping and loss-scaling state)
//   checkpoints/latest         a link to the newest checkpoint folder
//   best.safetensors           weights of the best validation mean foreground Dice,
//                              for prediction (no deep supervision heads)
//   metrics.jsonl              one JSON line per logged step and per validation
//
// A checkpoint is written into a hidden folder, each file flushed to disk, and
// only then renamed to its step-* name (one atomic rename); the previous one is
// removed after that. Both files carry the step, and the state a digest of the
// weights, so that the weights of one checkpoint can never be paired with the
// state of another: a checkpoint that fails the check is reported by name and
// the newest complete one resumed. Every other file but the log is written
// atomically (io/atomic_file.h).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/model/unet_model.h"

namespace unet {

// What a checkpoint's state.safetensors holds beside the weights.
struct TrainState {
  int64_t step = 0;
  double best = -1;          // best mean foreground Dice so far
  int64_t best_step = -1;    // the step best.safetensors was saved at
  int64_t bad_validations = 0;
  float loss_scale = 0;      // dynamic loss scaling's scale and finite steps (0: not scaling)
  int64_t good_steps = 0;
  int ranks = 1;             // the data-parallel ranks that wrote it
  std::vector<float> m, v;   // the optimizer's moments, host copies
};

class RunFolder {
 public:
  explicit RunFolder(std::string dir) : dir_(std::move(dir)) {}
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& name) const;
  // Checkpoint folders (checkpoints/step-*), newest first; not yet verified.
  std::vector<std::string> checkpoints() const;

  // The start decision, before any work. Refused, with the choices: --resume
  // without a checkpoint; --load-weights into a folder that holds one; a folder
  // holding weights it cannot resume from (no checkpoint beside them), which
  // starting over would overwrite. `resume_from`: a checkpoint folder named by
  // --resume ("" for this folder's own). Creates the folder and proves it writable.
  void start(bool resume_required, const std::string& resume_from, bool loading_weights) const;
  // Free space for two checkpoints of `checkpoint_bytes` (the new one is whole
  // before the old one goes); throws std::runtime_error saying how much is free.
  void check_space(int64_t checkpoint_bytes) const;

  void write(const std::string& name, const std::string& bytes) const;  // atomically
  void append_metrics(const nlohmann::json& line) const;
  // Drops the log's lines of steps after `step` (and a line cut short by a
  // crash): a resumed run logs them again.
  void trim_metrics(int64_t step) const;

  void save_checkpoint(const UNet& model, const TrainState& state,
                       const std::map<std::string, std::string>& metadata) const;
  // Loads the newest complete checkpoint (or the one `from` names, unless this
  // folder holds a newer one: the run went on from it) into the model and state
  // and returns its folder; "" when there is none. Damaged or
  // mismatched checkpoints are reported on stderr and skipped; throws FileError
  // when none is complete, std::invalid_argument (with the choices) for one of
  // another model. state.m and .v must have the model's size.
  std::string load_checkpoint(UNet& model, TrainState& state, const std::string& from = "") const;
  // After a resume from `resumed`, a checkpoint of this folder: the writing a
  // crash cut short after its rename is finished (the latest link made, the
  // older checkpoints removed).
  void settle(const std::string& resumed) const;
  void save_best(const UNet& model, int64_t step, const std::map<std::string, std::string>& metadata) const;
  // Loads best.safetensors into the model when there is one.
  bool load_best(UNet& model) const;
  // After a resume: a crash between a checkpoint and the best weights saved at
  // its step leaves best.safetensors older than the state says; the resumed
  // weights are those weights, and are written again.
  void restore_best(const UNet& model, const TrainState& state,
                    const std::map<std::string, std::string>& metadata) const;

 private:
  void make_latest(const std::string& name) const;  // checkpoints/latest -> name; the others removed

  std::string dir_;
};

}  // namespace unet
