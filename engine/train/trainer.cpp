#include "engine/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "engine/storage/checkpoint.h"
#include "engine/parallel/gradient_reducer.h"
#include "engine/train/train_step.h"
#include "kernels/metrics.h"

namespace unet {
namespace {

namespace fs = std::filesystem;

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

// What last.state.safetensors holds beside the weights.
struct State {
  int64_t step = 0;
  double best = -1;          // best mean foreground Dice so far
  int64_t bad_validations = 0;
  float loss_scale = 0;      // dynamic loss scaling's scale and finite steps (0: not scaling)
  int64_t good_steps = 0;
};

std::string path_in(const TrainOptions& opt, const std::string& name) { return (fs::path(opt.run_dir) / name).string(); }

void save_state(const TrainOptions& opt, const UNet& model, const State& s, const std::vector<float>& m,
                const std::vector<float>& v) {
  save_weights(path_in(opt, "last.safetensors"), model, opt.metadata);
  Safetensors f;
  f.metadata = {{"step", std::to_string(s.step)},
                {"best", nlohmann::json(s.best).dump()},
                {"bad_validations", std::to_string(s.bad_validations)},
                {"loss_scale", nlohmann::json(s.loss_scale).dump()},
                {"good_steps", std::to_string(s.good_steps)},
                {"unet.config", config_to_json(model.config())}};
  f.tensors.push_back({"optimizer.m", {static_cast<int64_t>(m.size())}, m});
  f.tensors.push_back({"optimizer.v", {static_cast<int64_t>(v.size())}, v});
  // The state goes second: a state file never points at weights older than itself.
  write_safetensors(path_in(opt, "last.state.safetensors"), f);
}

bool load_state(const TrainOptions& opt, UNet& model, State& s, std::vector<float>& m, std::vector<float>& v) {
  const std::string wpath = path_in(opt, "last.safetensors"), spath = path_in(opt, "last.state.safetensors");
  if (!fs::exists(spath)) return false;
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
    if (state.metadata.count("loss_scale")) {  // absent from runs that predate loss scaling
      s.loss_scale = nlohmann::json::parse(state.metadata.at("loss_scale")).get<float>();
      s.good_steps = std::stoll(state.metadata.at("good_steps"));
    }
  } catch (const std::exception& e) {
    throw FileError(spath + ": training state metadata incomplete (" + e.what() + ")");
  }
  for (auto [name, dst] : {std::pair{"optimizer.m", &m}, std::pair{"optimizer.v", &v}}) {
    const NamedTensor* t = state.find(name);
    if (!t || t->values.size() != dst->size())
      throw FileError(spath + ": " + name + " is missing or does not match the model's " +
                      std::to_string(dst->size()) + " parameters");
    *dst = t->values;
  }
  return true;
}

// Contiguous runs of trainable parameters: frozen tensors are left out of the
// optimizer step (momentum and weight decay included).
std::vector<std::pair<int64_t, int64_t>> trainable_ranges(const UNet& model, const std::vector<std::string>& freeze) {
  std::vector<std::pair<int64_t, int64_t>> out;
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

void append_line(const std::string& path, const nlohmann::json& j) {
  std::ofstream f(path, std::ios::app);
  f << j.dump() << '\n';
  if (!f) throw FileError(path + ": cannot append to the metrics log");
}

}  // namespace

Validation validate(UNet& model, const std::vector<Sample>& cases, const WindowSpec& window) {
  const Head head = model.config().head;
  const int classes = model.config().classes;
  Confusion counts(classes);
  for (const Sample& c : cases) {
    std::vector<float> logits = predict_logits(model, c.image.data(), {c.d, c.h, c.w}, window);
    const Shape s{1, model.config().head == Head::sigmoid ? 1 : classes, c.d, c.h, c.w, c.dims};
    confusion_accumulate(Tensor(logits.data(), s), c.label.data(), head, -1, counts);
  }
  Validation v;
  double sum = 0;
  int counted = 0;
  for (int k = 0; k < classes; ++k) {
    v.dice.push_back(dice(counts, k));
    v.iou.push_back(iou(counts, k));
    if (k > 0 && !std::isnan(v.dice.back())) sum += v.dice.back(), ++counted;
  }
  v.mean_foreground_dice = counted ? sum / counted : 0;
  return v;
}

TrainResult train(UNet& model, const TrainData& data, const TrainOptions& opt, const std::atomic<bool>* stop) {
  Communicator* comm = opt.comm;
  const int world = comm ? comm->world() : 1, rank = comm ? comm->rank() : 0;
  const bool lead = rank == 0;  // validates, logs, writes the run folder
  const int64_t N = data.batch.n;  // per rank
  const int64_t G = N * world;     // the global batch
  const int64_t batches_per_epoch = data.samples_per_epoch / G;
  const int64_t steps_per_epoch = batches_per_epoch / opt.accumulate;
  if (opt.accumulate < 1) throw std::invalid_argument("gradient accumulation must be at least 1 batch");
  if (steps_per_epoch < 1)
    throw std::invalid_argument("an epoch has " + std::to_string(data.samples_per_epoch) +
                                " samples: too few for batches of " + std::to_string(G) + " x " +
                                std::to_string(opt.accumulate) + " accumulated; lower --batch-size or raise the "
                                "augmentation rate");
  const int64_t total = opt.steps > 0 ? opt.steps : opt.epochs * steps_per_epoch;
  ScheduleSpec schedule = opt.schedule;
  schedule.total_steps = total;
  learning_rate(schedule, 0);  // validates the schedule before any work
  fs::create_directories(opt.run_dir);
  const std::string log = path_in(opt, "metrics.jsonl");

  Backend& be = model.backend();
  // Parameters and gradients go over the communicator that reaches the backend's memory.
  Communicator* tensors = be.is_cuda() ? opt.device_comm : comm;
  if (world > 1 && !tensors)
    throw std::invalid_argument("data parallel on GPUs: no device communicator (NCCL) was given");
  if (world > 1 && be.is_cuda() && opt.sync_batchnorm && model.config().norm == NormChoice::batch)
    throw std::invalid_argument("--sync-batchnorm: not built for GPUs yet; leave it out (each rank's batch "
                                "statistics) or use --norm instance");
  if (model.input_shape() != data.batch) model.plan(data.batch);
  const int64_t n_params = model.parameter_count(), param_bytes = n_params * int64_t(sizeof(float));
  // m and v: host copies of the optimizer's moments, for the training state file.
  std::vector<float> m(n_params, 0.f), v(m.size(), 0.f);
  State state;
  const bool resumed = load_state(opt, model, state, m, v);
  if (resumed && lead)
    std::printf("resuming %s at step %lld of %lld\n", opt.run_dir.c_str(), (long long)state.step, (long long)total);
  LossScaler scaler(opt.loss_scaling);
  if (scaler.dynamic() && state.loss_scale > 0) scaler.restore(state.loss_scale, state.good_steps);
  std::unique_ptr<GradientReducer> reducer;
  LossSumsReducer reduce_sums;
  if (world > 1) {
    tensors->broadcast(model.device_params(), n_params, 0);
    tensors->broadcast(model.device_state(), static_cast<int64_t>(model.state().size()), 0);
    std::vector<int64_t> offsets;
    for (const ParamInfo& p : model.param_table()) offsets.push_back(p.offset);
    reducer = std::make_unique<GradientReducer>(*tensors, model.device_grads(), n_params, offsets);
    // One thread talks at a time, in the same order on every rank: synchronized
    // batch norm's sums go during backward, so the buckets then wait for its end.
    if (opt.sync_batchnorm && model.config().norm == NormChoice::batch)
      model.set_norm_sums_reducer([comm](double* s, int64_t n) { comm->all_reduce_sum(s, n); });
    else if (!be.is_cuda())  // on a GPU the buckets go after backward (finish())
      model.set_grads_ready([&r = *reducer](int64_t first) { r.ready(first); });
    model.set_first_sample(rank * N);
    reduce_sums = [comm](std::vector<double>& s) { comm->all_reduce_sum(s.data(), static_cast<int64_t>(s.size())); };
  }
  struct Unhook {  // the model outlives the reducer and the communicator
    UNet& m;
    ~Unhook() {
      m.set_grads_ready(nullptr);
      m.set_norm_sums_reducer(nullptr);
    }
  } unhook{model};
  TrainStep step(model, {opt.loss, opt.optimizer, opt.clip_norm, opt.accumulate, trainable_ranges(model, opt.freeze),
                         reducer.get(), reduce_sums});
  if (resumed) {
    be.upload(step.m(), m.data(), param_bytes);
    be.upload(step.v(), v.data(), param_bytes);
  }
  auto save = [&] {
    be.download(m.data(), step.m(), param_bytes);
    be.download(v.data(), step.v(), param_bytes);
    state.loss_scale = scaler.dynamic() ? scaler.scale() : 0.f;
    state.good_steps = scaler.good_steps();
    save_state(opt, model, state, m, v);
  };
  const int64_t val_every = opt.val_every > 0 ? opt.val_every : steps_per_epoch;

  TrainResult result;
  Loader loader(data.batch, data.make_sample, opt.workers, opt.prefetch, be.is_cuda());
  // A batch goes back to the loader once its copy is done, before the next
  // one comes (the loader's rule).
  const Batch* held = nullptr;
  auto next = [&]() -> std::optional<StagedBatch> {
    if (held) be.wait_staged(), loader.release(held), held = nullptr;
    held = loader.next();
    if (!held) return std::nullopt;
    const Tensor input = model.stage_input(held->image);
    return StagedBatch{input, model.stage_labels(held->label)};
  };
  const double started = now();
  const int64_t first_step = state.step;
  double last_print = 0;
  while (state.step < total) {
    const int64_t epoch = state.step / steps_per_epoch;
    std::vector<int64_t> order(static_cast<size_t>(data.samples_per_epoch));
    for (int64_t i = 0; i < data.samples_per_epoch; ++i) order[i] = i;
    std::mt19937_64 rng(sample_key(opt.seed, epoch, -1, 1));
    std::shuffle(order.begin(), order.end(), rng);
    // Resume mid-epoch: the batches already used are skipped, not recomputed.
    // This rank's share: samples [rank N, (rank + 1) N) of each global batch.
    std::vector<int64_t> mine;
    for (int64_t b = (state.step % steps_per_epoch) * opt.accumulate * G; b < steps_per_epoch * opt.accumulate * G; b += G)
      mine.insert(mine.end(), order.begin() + b + rank * N, order.begin() + b + rank * N + N);
    loader.start_epoch(epoch, mine);
    bool epoch_done = false;
    while (!epoch_done && state.step < total) {
      const float loss_scale = scaler.scale();
      const float lr = static_cast<float>(learning_rate(schedule, state.step));
      // The next step's first batch is staged while this step runs, unless
      // validation (which stages its own) or nothing follows.
      const bool validating =
          !data.validation.empty() && ((state.step + 1) % val_every == 0 || state.step + 1 == total);
      const bool prefetch = !validating && state.step + 1 < total;
      const std::optional<StepResult> r = step.run(state.step, lr, loss_scale, next, prefetch);
      if (!r) {
        epoch_done = true;
        break;
      }
      const double loss = r->loss, norm = r->grad_norm;
      const bool finite = std::isfinite(norm);
      if (!std::isfinite(loss) || (!finite && !scaler.dynamic()))
        throw std::runtime_error("step " + std::to_string(state.step) + ": the loss or gradient is not finite (loss " +
                                 std::to_string(loss) + "); lower the learning rate, or check the inputs");
      // Under loss scaling, a step whose gradients overflowed was skipped: the scale halves.
      const bool take = scaler.update(finite);
      ++state.step;
      result.last_loss = loss;
      result.skipped_steps += take ? 0 : 1;
      const double elapsed = now() - started;
      const double per_second = double((state.step - first_step) * opt.accumulate * G) / std::max(elapsed, 1e-9);
      if (lead) {
        nlohmann::json line{{"step", state.step}, {"epoch", epoch}, {"loss", loss}, {"lr", lr},
                            {"grad_norm", finite ? nlohmann::json(norm) : nlohmann::json()},
                            {"samples_per_s", per_second}};
        if (scaler.dynamic()) line["loss_scale"] = loss_scale, line["skipped"] = !take;
        append_line(log, line);
      }
      const double eta = double(total - state.step) * elapsed / double(state.step - first_step);
      if (lead && opt.progress_bar && !opt.verbose) {
        const int width = 30, filled = static_cast<int>(width * state.step / total);
        std::printf("\r[%s%s] step %lld/%lld loss %.4f %.1f img/s ETA %s ", std::string(filled, '=').c_str(),
                    std::string(width - filled, ' ').c_str(), (long long)state.step, (long long)total, loss,
                    per_second, clock_text(eta).c_str());
        std::fflush(stdout);
      } else if (lead &&
                 (opt.verbose || now() - last_print > 30 || state.step == total || state.step == first_step + 1)) {
        std::printf("step %lld/%lld epoch %lld loss %.4f lr %.3g %.1f samples/s ETA %s\n", (long long)state.step,
                    (long long)total, (long long)epoch, loss, lr, per_second, clock_text(eta).c_str());
        std::fflush(stdout);
        last_print = now();
      }

      bool stop_early = false;
      if (!data.validation.empty() && (state.step % val_every == 0 || state.step == total)) {
        Validation val;
        if (lead) {
          val = validate(model, data.validation, opt.window);
          nlohmann::json j{{"step", state.step}, {"val_dice", val.dice}, {"val_iou", val.iou},
                           {"val_mean_dice", val.mean_foreground_dice}};
          for (auto* arr : {&j["val_dice"], &j["val_iou"]})
            for (auto& x : *arr)
              if (x.is_number_float() && std::isnan(x.get<double>())) x = nullptr;
          append_line(log, j);
          if (opt.progress_bar) std::printf("\n");
          std::printf("validation at step %lld: mean foreground Dice %.4f\n", (long long)state.step,
                      val.mean_foreground_dice);
        }
        // Rank 0's score everywhere (the others add 0), so every rank decides alike.
        if (world > 1) comm->all_reduce_sum(&val.mean_foreground_dice, 1);
        if (val.mean_foreground_dice > state.best + opt.min_delta) {
          state.best = val.mean_foreground_dice;
          state.bad_validations = 0;
          if (lead) save_weights(path_in(opt, "best.safetensors"), model, opt.metadata);
        } else if (opt.patience > 0 && ++state.bad_validations >= opt.patience) {
          stop_early = true;
        }
        val.step = state.step;
        result.validations.push_back(std::move(val));
      }
      bool stop_now = stop && stop->load();
      if (world > 1) {  // a signal to any rank stops them all at this step
        double any = stop_now ? 1 : 0;
        comm->all_reduce_sum(&any, 1);
        stop_now = any > 0;
      }
      if (lead && (stop_early || stop_now || state.step == total || state.step % steps_per_epoch == 0))
        save();
      if (stop_now) {
        result.status = TrainResult::Status::preempted;
        break;
      }
      if (stop_early) {
        result.status = TrainResult::Status::early_stopped;
        break;
      }
    }
    if (result.status != TrainResult::Status::finished) break;
  }
  if (held) be.wait_staged(), loader.release(held);  // a batch fetched ahead for a step not run
  if (opt.progress_bar && lead) std::printf("\n");
  if (world > 1) comm->barrier();  // rank 0's checkpoint is whole before any rank reports
  result.steps = state.step;
  result.samples_per_second = double((state.step - first_step) * opt.accumulate * G) / std::max(now() - started, 1e-9);
  return result;
}

}  // namespace unet
