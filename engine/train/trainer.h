// The training loop: batches from the prefetching loader, forward, fused loss,
// backward, gradient accumulation, global-norm clipping, the optimizer step on
// the learning-rate schedule; validation by sliding-window prediction with
// per-class Dice and IoU; early stopping; checkpoints; logs.
//
// A step is one optimizer update (`accumulate` batches). Everything random is
// keyed on (seed, epoch, sample) or on the step (dropout), and reductions are
// deterministic, so a run resumed from its last checkpoint continues
// bit-for-bit as if it had never stopped (CPU).
//
// Data parallel over `world` ranks: TrainData::batch is the global batch; each
// rank takes its slice of it (EpochPlan), the loss's batch sums and the
// gradients are summed over ranks (DataParallel), and every rank applies the
// same update. The result is the single-process run with the global batch, up
// to summation order (per-rank batch norm statistics aside). Rank 0 alone
// validates, logs and writes the run folder (RunFolder: its files, every one
// written atomically). A stop request (SIGTERM, SIGUSR1: Slurm's preemption)
// finishes the step, writes the checkpoint and returns `preempted`.
//
// The run's phases, in order: start (the run folder's checkpoint resumed, the
// ranks joined), and for each epoch its sample order, then per step the train
// step, its report (log line, progress), and its end (validation, early
// stopping, the checkpoint, the stop decision); the end (the loader drained,
// the ranks met).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/evaluate/scores.h"
#include "engine/parallel/communicator.h"
#include "engine/train/schedule.h"
#include "engine/model/sliding_window.h"
#include "engine/train/loss_scaler.h"
#include "engine/model/unet_model.h"
#include "engine/train/loader.h"
#include "engine/train/run_folder.h"
#include "io/data/patch.h"
#include "kernels/loss.h"
#include "kernels/optimizer.h"

namespace unet {

struct TrainOptions {
  int64_t epochs = 10;        // used when steps == 0
  int64_t steps = 0;          // optimizer updates; overrides epochs
  int accumulate = 1;         // batches per update
  LossSpec loss;
  OptimizerSpec optimizer;
  ScheduleSpec schedule;      // total_steps is set from epochs/steps
  double clip_norm = 0;       // global gradient-norm clipping; 0: none
  LossScaling loss_scaling;   // dynamic for fp16 (--precision fp16)
  int64_t val_every = 0;      // steps between validations; 0: once per epoch
  int patience = 0;           // validations without improvement before stopping; 0: never
  double min_delta = 0;       // an improvement is at least this much Dice
  uint64_t seed = 0;
  std::vector<std::string> freeze;  // parameter name prefixes kept fixed ("enc" for the encoder)
  WindowSpec window;
  int workers = 2, prefetch = 4;
  std::string run_dir;
  std::string resume_from;    // a checkpoint folder to resume (--resume CHECKPOINT); "": run_dir's newest
  bool progress_bar = false;  // a live bar (terminal) or periodic plain lines (logs)
  bool verbose = false;       // a plain line after every step
  std::map<std::string, std::string> metadata;  // stored with every weights file
  // Data parallelism (null: one process). Every rank runs train() with the
  // same TrainData and takes its share of each global batch.
  Communicator* comm = nullptr;
  // On GPUs, the communicator for the parameters and gradients, which live in
  // device memory (NCCL); comm then carries the host values (loss sums, the
  // stop flag, the validation score).
  Communicator* device_comm = nullptr;
  // Batch norm statistics over the global batch instead of each rank's. Its
  // reductions run inside backward, so the gradient buckets then wait for the
  // end of backward (no overlap).
  bool sync_batchnorm = false;
};

struct TrainData {
  Shape batch;                    // the global batch: N x C x [D x] H x W of patches over every rank
  int64_t samples_per_epoch = 0;
  MakeSample make_sample;  // fills one sample of a batch; depends only on its arguments
  std::vector<Sample> validation;  // whole cases, normalized, labelled
};

struct Validation : Scores {
  int64_t step = 0;
};

struct TrainResult {
  enum class Status { finished, early_stopped, preempted } status = Status::finished;
  int64_t steps = 0;
  double last_loss = 0;
  int64_t skipped_steps = 0;  // steps whose gradients overflowed under loss scaling (parameters unchanged)
  std::vector<Validation> validations;
  double samples_per_second = 0;
};

// The process exit status that tells a job script "preempted, checkpoint
// written: requeue me" (EX_TEMPFAIL).
constexpr int kExitPreempted = 75;

// Resumes from opt.run_dir's newest complete checkpoint when it has one (or
// opt.resume_from; the model must then have the stored configuration, and its
// weights are replaced). stop may be null.
TrainResult train(UNet& model, const TrainData& data, const TrainOptions& opt, const std::atomic<bool>* stop);

}  // namespace unet
