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
// Data parallel over `world` ranks: the global batch is world x the per-rank
// batch; each step, rank r takes samples [r N, (r + 1) N) of the global batch
// in the epoch's order, the loss's batch sums are summed over ranks (so the
// loss is the global batch's), the gradients are summed over ranks in buckets
// while backward runs, and every rank applies the same update. The result is
// the single-process run with the global batch, up to summation order (per-rank
// batch norm statistics aside). Rank 0's weights are broadcast at the start and
// on resume; a stop request on any rank stops every rank at the same step.
// On GPUs the gradient all-reduce (NCCL) queues on the compute stream after
// backward: correct, not yet overlapped (a communication stream is to come).
//
// The run folder holds
//   last.safetensors, last.state.safetensors  weights; optimizer moments, step, epoch, early-stopping state
//   best.safetensors                          weights of the best validation mean foreground Dice
//   metrics.jsonl                             one JSON line per logged step and per validation
// every file written atomically. A stop request (SIGTERM, SIGUSR1: Slurm's
// preemption) finishes the step, writes last.* and returns `preempted`.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/parallel/communicator.h"
#include "engine/train/schedule.h"
#include "engine/model/sliding_window.h"
#include "engine/train/loss_scaler.h"
#include "engine/model/unet_model.h"
#include "engine/train/loader.h"
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
  bool progress_bar = false;  // a live bar (terminal) or periodic plain lines (logs)
  bool verbose = false;       // a plain line after every step
  std::map<std::string, std::string> metadata;  // stored with every weights file
  // Data parallelism (null: one process). Every rank runs train() with its
  // share of each global batch (TrainData::batch is the per-rank batch); rank 0
  // alone validates, logs and writes the run folder.
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
  Shape batch;                    // N x C x [D x] H x W of one batch of patches
  int64_t samples_per_epoch = 0;
  MakeSample make_sample;  // fills one sample of a batch; depends only on its arguments
  std::vector<Sample> validation;  // whole cases, normalized, labelled
};

struct Validation {
  int64_t step = 0;
  std::vector<double> dice, iou;  // per class
  double mean_foreground_dice = 0;
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

// Resumes from opt.run_dir/last.* when they exist (the model must then have the
// stored configuration; its weights are replaced). stop may be null.
TrainResult train(UNet& model, const TrainData& data, const TrainOptions& opt, const std::atomic<bool>* stop);

// Per-class Dice and IoU of the model over whole cases (sliding window).
Validation validate(UNet& model, const std::vector<Sample>& cases, const WindowSpec& window);

}  // namespace unet
