#include "engine/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "engine/parallel/data_parallel.h"
#include "engine/train/epoch_plan.h"
#include "engine/train/train_step.h"
#include "io/fault_injection.h"

namespace unet {
namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string clock_text(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60), (long long)(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

// Contiguous runs of trainable parameters: frozen tensors are left out of the
// optimizer step (momentum and weight decay included).
ParamRanges trainable_ranges(const UNet& model, const std::vector<std::string>& freeze) {
  ParamRanges out;
  for (const ParamInfo& p : model.param_table()) {
    const bool frozen = std::any_of(freeze.begin(), freeze.end(),
                                    [&](const std::string& f) { return p.name.compare(0, f.size(), f) == 0; });
    if (frozen) continue;
    if (!out.empty() && out.back().first + out.back().second == p.offset)
      out.back().second += p.count;
    else
      out.push_back({p.offset, p.count});
  }
  return out;
}

// A JSON number, or null for NaN (a class absent from the validation cases).
nlohmann::json scores_json(const std::vector<double>& xs) {
  nlohmann::json out = nlohmann::json::array();
  for (double x : xs) out.push_back(std::isnan(x) ? nlohmann::json() : nlohmann::json(x));
  return out;
}

// One training run, as its phases (trainer.h).
class TrainingRun {
 public:
  TrainingRun(UNet& model, const TrainData& data, const TrainOptions& opt, const std::atomic<bool>* stop);

  TrainResult run() {
    start();
    while (more()) {
      start_epoch();
      while (more() && train_step()) {
        report_step();
        end_step();
      }
    }
    return end();
  }

 private:
  bool more() const { return state_.step < total_ && result_.status == TrainResult::Status::finished; }
  void start();
  void start_epoch();
  bool train_step();  // false: the epoch's batches ran out
  void report_step();
  void end_step();
  Validation validation_step();
  void checkpoint();
  TrainResult end();
  std::optional<StagedBatch> next_batch();
  double samples_per_second() const;

  UNet& model_;
  Backend& be_;
  const TrainData& data_;
  const TrainOptions& opt_;
  const std::atomic<bool>* stop_;
  const int world_, rank_;
  const bool lead_;  // rank 0: validates, logs, writes the run folder
  const EpochPlan plan_;
  const RunFolder folder_;
  int64_t total_ = 0, val_every_ = 0;
  ScheduleSpec schedule_;
  TrainState state_;
  LossScaler scaler_;
  std::unique_ptr<DataParallel> parallel_;  // before step_: the step holds its reducer
  std::unique_ptr<TrainStep> step_;
  std::unique_ptr<Loader> loader_;
  const Batch* held_ = nullptr;  // the loader's batch whose copy may still run
  TrainResult result_;
  // The last step, for its report.
  int64_t epoch_ = 0, first_step_ = 0;
  float lr_ = 0, loss_scale_ = 1;
  StepResult last_;
  bool taken_ = true;
  double started_ = 0, last_print_ = 0;
};

TrainingRun::TrainingRun(UNet& model, const TrainData& data, const TrainOptions& opt, const std::atomic<bool>* stop)
    : model_(model),
      be_(model.backend()),
      data_(data),
      opt_(opt),
      stop_(stop),
      world_(opt.comm ? opt.comm->world() : 1),
      rank_(opt.comm ? opt.comm->rank() : 0),
      lead_(rank_ == 0),
      plan_(make_epoch_plan(data.samples_per_epoch, data.batch, world_, opt.accumulate)),
      folder_(opt.run_dir),
      scaler_(opt.loss_scaling) {
  total_ = opt.steps > 0 ? opt.steps : opt.epochs * plan_.steps_per_epoch();
  val_every_ = opt.val_every > 0 ? opt.val_every : plan_.steps_per_epoch();
  schedule_ = opt.schedule;
  schedule_.total_steps = total_;
  learning_rate(schedule_, 0);  // validates the schedule before any work
}

// The run folder's checkpoint resumed, the ranks joined, the step and the loader made.
void TrainingRun::start() {
  Communicator* tensors = be_.is_cuda() ? opt_.device_comm : opt_.comm;
  if (world_ > 1 && !tensors)
    throw std::invalid_argument("data parallel on GPUs: no device communicator (NCCL) was given");
  if (world_ > 1 && be_.is_cuda() && opt_.sync_batchnorm && model_.config().norm == NormChoice::batch)
    throw std::invalid_argument("--sync-batchnorm: not built for GPUs; leave it out (each rank's batch "
                                "statistics) or use --norm instance");
  const Shape batch = per_rank_batch(data_.batch, world_);
  if (model_.input_shape() != batch) model_.plan(batch);
  const int64_t n_params = model_.parameter_count(), param_bytes = n_params * int64_t(sizeof(float));
  state_.m.assign(n_params, 0.f);
  state_.v.assign(n_params, 0.f);
  folder_.start(false, opt_.resume_from, false);
  if (lead_) folder_.check_space(3 * param_bytes + (1 << 20));  // weights, two moments, headers
  const std::string resumed_from = folder_.load_checkpoint(model_, state_, opt_.resume_from);
  const bool resumed = !resumed_from.empty();
  if (resumed && lead_) {
    std::printf("resuming %s at step %lld of %lld from %s", opt_.run_dir.c_str(), (long long)state_.step,
                (long long)total_, resumed_from.c_str());
    if (state_.ranks != world_)
      std::printf(" (its run had %d rank(s), this one %d: the same global batch and sample order)", state_.ranks, world_);
    std::printf("\n");
    folder_.settle(resumed_from);
    folder_.restore_best(model_, state_, opt_.metadata);
  }
  if (lead_) folder_.trim_metrics(state_.step);  // the lines of steps a crash undid (all of them without a checkpoint)
  state_.ranks = world_;
  if (scaler_.dynamic() && state_.loss_scale > 0) scaler_.restore(state_.loss_scale, state_.good_steps);
  if (world_ > 1) parallel_ = std::make_unique<DataParallel>(model_, *opt_.comm, *tensors, batch.n, opt_.sync_batchnorm);
  step_ = std::make_unique<TrainStep>(
      model_, StepSettings{opt_.loss, opt_.optimizer, opt_.clip_norm, opt_.accumulate,
                           trainable_ranges(model_, opt_.freeze), parallel_ ? parallel_->reducer() : nullptr,
                           parallel_ ? parallel_->loss_sums() : LossSumsReducer()});
  if (resumed) {
    be_.upload(step_->m(), state_.m.data(), param_bytes);
    be_.upload(step_->v(), state_.v.data(), param_bytes);
  }
  loader_ = std::make_unique<Loader>(batch, data_.make_sample, opt_.workers, opt_.prefetch, be_.is_cuda());
  started_ = now();
  first_step_ = state_.step;
}

// This rank's samples of the epoch, from the step the run stands at.
void TrainingRun::start_epoch() {
  epoch_ = plan_.epoch_of(state_.step);
  loader_->start_epoch(epoch_, plan_.rank_samples(opt_.seed, state_.step, rank_));
}

// A batch goes back to the loader once its copy is done, before the next one
// comes (the loader's rule).
std::optional<StagedBatch> TrainingRun::next_batch() {
  if (held_) be_.wait_staged(), loader_->release(held_), held_ = nullptr;
  held_ = loader_->next();
  if (!held_) return std::nullopt;
  const Tensor input = model_.stage_input(held_->image);
  return StagedBatch{input, model_.stage_labels(held_->label)};
}

bool TrainingRun::train_step() {
  fault_at("step");
  loss_scale_ = scaler_.scale();
  lr_ = static_cast<float>(learning_rate(schedule_, state_.step));
  // The next step's first batch is staged while this step runs, unless
  // validation (which stages its own) or nothing follows.
  const bool validating =
      !data_.validation.empty() && ((state_.step + 1) % val_every_ == 0 || state_.step + 1 == total_);
  const bool prefetch = !validating && state_.step + 1 < total_;
  const std::optional<StepResult> r = step_->run(state_.step, lr_, loss_scale_, [this] { return next_batch(); }, prefetch);
  if (!r) return false;
  last_ = *r;
  const bool finite = std::isfinite(r->grad_norm);
  if (!std::isfinite(r->loss) || (!finite && !scaler_.dynamic()))
    throw std::runtime_error("step " + std::to_string(state_.step) + ": the loss or gradient is not finite (loss " +
                             std::to_string(r->loss) + "); lower the learning rate, or check the inputs");
  // Under loss scaling, a step whose gradients overflowed was skipped: the scale halves.
  taken_ = scaler_.update(finite);
  ++state_.step;
  result_.last_loss = r->loss;
  result_.skipped_steps += taken_ ? 0 : 1;
  return true;
}

double TrainingRun::samples_per_second() const {
  return double((state_.step - first_step_) * opt_.accumulate * plan_.global_batch()) / std::max(now() - started_, 1e-9);
}

// The metrics log's line, and a progress bar (a terminal) or plain lines (a log).
void TrainingRun::report_step() {
  if (!lead_) return;
  const double loss = last_.loss, per_second = samples_per_second();
  const bool finite = std::isfinite(last_.grad_norm);
  nlohmann::json line{{"step", state_.step}, {"epoch", epoch_}, {"loss", loss}, {"lr", lr_},
                      {"grad_norm", finite ? nlohmann::json(last_.grad_norm) : nlohmann::json()},
                      {"samples_per_s", per_second}};
  if (scaler_.dynamic()) line["loss_scale"] = loss_scale_, line["skipped"] = !taken_;
  folder_.append_metrics(line);
  const double eta = double(total_ - state_.step) * (now() - started_) / double(state_.step - first_step_);
  if (opt_.progress_bar && !opt_.verbose) {
    const int width = 30, filled = static_cast<int>(width * state_.step / total_);
    std::printf("\r[%s%s] step %lld/%lld loss %.4f %.1f img/s ETA %s ", std::string(filled, '=').c_str(),
                std::string(width - filled, ' ').c_str(), (long long)state_.step, (long long)total_, loss, per_second,
                clock_text(eta).c_str());
    std::fflush(stdout);
  } else if (opt_.verbose || now() - last_print_ > 30 || state_.step == total_ || state_.step == first_step_ + 1) {
    std::printf("step %lld/%lld epoch %lld loss %.4f lr %.3g %.1f samples/s ETA %s\n", (long long)state_.step,
                (long long)total_, (long long)epoch_, loss, lr_, per_second, clock_text(eta).c_str());
    std::fflush(stdout);
    last_print_ = now();
  }
}

// Rank 0 scores the validation cases and logs them; every rank gets its score.
Validation TrainingRun::validation_step() {
  Validation val;
  if (lead_) {
    fault_at("validation");
    static_cast<Scores&>(val) = score_cases(model_, data_.validation, opt_.window);
    folder_.append_metrics({{"step", state_.step}, {"val_dice", scores_json(val.dice)},
                            {"val_iou", scores_json(val.iou)}, {"val_mean_dice", val.mean_foreground_dice}});
    if (opt_.progress_bar) std::printf("\n");
    std::printf("validation at step %lld: mean foreground Dice %.4f\n", (long long)state_.step,
                val.mean_foreground_dice);
  }
  if (parallel_) val.mean_foreground_dice = parallel_->from_lead(val.mean_foreground_dice);
  val.step = state_.step;
  return val;
}

// Validation when due, early stopping, the checkpoint, the stop decision.
void TrainingRun::end_step() {
  bool stop_early = false;
  if (!data_.validation.empty() && (state_.step % val_every_ == 0 || state_.step == total_)) {
    Validation val = validation_step();
    if (val.mean_foreground_dice > state_.best + opt_.min_delta) {
      state_.best = val.mean_foreground_dice;
      state_.best_step = state_.step;
      state_.bad_validations = 0;
      // The checkpoint first, then the best weights: a crash between the two
      // leaves a checkpoint that restores them (RunFolder::restore_best).
      if (lead_) checkpoint(), folder_.save_best(model_, state_.step, opt_.metadata);
    } else if (opt_.patience > 0 && ++state_.bad_validations >= opt_.patience) {
      stop_early = true;
    }
    result_.validations.push_back(std::move(val));
  }
  bool stop_now = stop_ && stop_->load();
  if (parallel_) stop_now = parallel_->any(stop_now);  // a signal to any rank stops them all at this step
  const bool saved = state_.best_step == state_.step;
  if (lead_ && !saved && (stop_early || stop_now || state_.step == total_ || state_.step % plan_.steps_per_epoch() == 0))
    checkpoint();
  if (stop_now)
    result_.status = TrainResult::Status::preempted;
  else if (stop_early)
    result_.status = TrainResult::Status::early_stopped;
}

void TrainingRun::checkpoint() {
  const int64_t param_bytes = model_.parameter_count() * int64_t(sizeof(float));
  be_.download(state_.m.data(), step_->m(), param_bytes);
  be_.download(state_.v.data(), step_->v(), param_bytes);
  state_.loss_scale = scaler_.dynamic() ? scaler_.scale() : 0.f;
  state_.good_steps = scaler_.good_steps();
  folder_.save_checkpoint(model_, state_, opt_.metadata);
}

TrainResult TrainingRun::end() {
  if (held_) be_.wait_staged(), loader_->release(held_), held_ = nullptr;  // fetched ahead for a step not run
  if (opt_.progress_bar && lead_) std::printf("\n");
  if (parallel_) parallel_->barrier();  // rank 0's checkpoint is whole before any rank reports
  result_.steps = state_.step;
  result_.samples_per_second = samples_per_second();
  return result_;
}

}  // namespace

TrainResult train(UNet& model, const TrainData& data, const TrainOptions& opt, const std::atomic<bool>* stop) {
  return TrainingRun(model, data, opt, stop).run();
}

}  // namespace unet
