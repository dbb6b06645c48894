// unet train: data, model, loss, optimizer and schedule from the command line;
// the run folder gets the checkpoints, the metrics log, the configuration, the
// learning curve and overlays of the held-out cases.
//
// Exit status: 0 done (or stopped early), 1 an error (the message says what),
// 75 stopped by SIGTERM/SIGUSR1 with a checkpoint written: run it again with
// the same --run-dir to resume.
//
// Data parallel on CPUs: launched as several processes (srun -n K, or RANK /
// WORLD_SIZE), the ranks meet through Gloo in --rendezvous and train as one
// run with the global --batch-size split evenly; rank 0 alone prints and
// writes the run folder.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "engine/storage/checkpoint.h"
#include "engine/parallel/communicator.h"
#include "engine/train/trainer.h"
#include "io/png.h"
#include "engine/evaluate/render.h"
#include "kernels/metrics.h"
#include "tools/cli/commands.h"
#include "tools/cli/device_options.h"
#include "tools/cli/model_options.h"
#include "io/data/pipeline.h"

namespace unet {
namespace {

namespace fs = std::filesystem;

std::atomic<bool> g_stop{false};
extern "C" void request_stop(int) { g_stop = true; }

struct TrainCli {
  ModelOptions model;
  DataOptions data;
  TrainOptions train;
  std::string loss = "dice_ce", optimizer = "adam", schedule = "poly", norm = "zscore", label_map, run_dir = "run";
  std::string load_weights, rendezvous;
  std::vector<double> window;
  std::vector<float> class_weights;
  double lr = 1e-3, label_threshold = std::nan(""), tversky_beta = 0.7, focal_gamma = 0.75;
  int64_t image_width = 0, image_height = 0, image_depth = 0, warmup = 0;
  int augmentation_rate = 0, save_augmented = 0;
  DeviceOptions device;
  bool no_augmentation = false, summary = false, resume = false;
};

void add_train_options(CLI::App& cmd, TrainCli& o) {
  add_model_options(cmd, o.model);
  cmd.add_option("--data", o.data.path, "Dataset: a folder with image/ and label/, a CSV manifest, or an nnU-Net "
                                        "folder (imagesTr/, labelsTr/, dataset.json); none: synthetic EM data");
  cmd.add_option("--val-cases", o.data.val_cases, "Case ids held out for validation")->delimiter(',');
  cmd.add_option("--val-fraction", o.data.val_fraction, "Fraction held out for validation")->capture_default_str();
  cmd.add_option("--fold", o.data.fold, "Cross-validation fold (0-based) of --folds");
  cmd.add_option("--folds", o.data.folds, "Folds for --fold")->capture_default_str();
  cmd.add_option("--label-threshold", o.label_threshold, "Binarize labels: class 1 above this value");
  cmd.add_option("--label-map", o.label_map, "Stored label value -> class, e.g. 0:1,255:0 (ISBI membrane)");
  cmd.add_option("--object-class", o.data.labels.object_value,
                 "The label value of the object (class 1); every other value is background");
  cmd.add_option("--ignore-label", o.data.labels.ignore_label, "A class left out of the loss and the metrics");
  cmd.add_option("--normalize", o.norm, "Intensity normalization: zscore, minmax, window, ct, fixed, none")
      ->capture_default_str();
  cmd.add_option("--window", o.window, "Clip range lo,hi for --normalize window")->delimiter(',')->expected(2);
  cmd.add_option("--image-width", o.image_width, "Patch width (with --image-height, instead of --size)");
  cmd.add_option("--image-height", o.image_height, "Patch height");
  cmd.add_option("--image-depth", o.image_depth, "Patch depth (3D)");
  cmd.add_option("--foreground-fraction", o.data.patch.foreground_fraction, "Share of patches centred on foreground")
      ->capture_default_str();
  cmd.add_option("--augmentation-rate", o.augmentation_rate, "Augmented copies of each case per epoch (0: every "
                                                             "sample augmented once)")->capture_default_str();
  cmd.add_flag("--no-augmentation", o.no_augmentation, "Train on the cases as they are");
  cmd.add_option("--save-augmented", o.save_augmented, "Write this many samples of the first epoch to the run folder");
  cmd.add_option("--epochs,-e", o.train.epochs, "Epochs (passes over the samples)")->capture_default_str();
  cmd.add_option("--steps", o.train.steps, "Optimizer steps (instead of --epochs)");
  cmd.add_option("--learning-rate,--lr", o.lr, "Base learning rate")->capture_default_str();
  cmd.add_option("--optimizer", o.optimizer, "sgd, adam or adamw")->check(CLI::IsMember({"sgd", "adam", "adamw"}))
      ->capture_default_str();
  cmd.add_option("--momentum", o.train.optimizer.momentum, "SGD momentum")->capture_default_str();
  cmd.add_flag("--nesterov", o.train.optimizer.nesterov, "Nesterov momentum (SGD)");
  cmd.add_option("--weight-decay", o.train.optimizer.weight_decay, "Weight decay")->capture_default_str();
  cmd.add_option("--schedule", o.schedule, "constant, step, poly or cosine")
      ->check(CLI::IsMember({"constant", "step", "poly", "cosine"}))->capture_default_str();
  cmd.add_option("--warmup", o.warmup, "Linear warm-up steps");
  cmd.add_option("--loss", o.loss, "bce, ce, weighted_ce, dice, jaccard, tversky, focal_tversky, dice_ce")
      ->check(CLI::IsMember({"bce", "ce", "weighted_ce", "dice", "jaccard", "tversky", "focal_tversky", "dice_ce"}))
      ->capture_default_str();
  cmd.add_option("--class-weights", o.class_weights, "Cross-entropy weight of each class")->delimiter(',');
  cmd.add_option("--tversky-beta", o.tversky_beta, "Tversky weight of false negatives")->capture_default_str();
  cmd.add_option("--focal-gamma", o.focal_gamma, "Focal Tversky exponent")->capture_default_str();
  cmd.add_option("--accumulate", o.train.accumulate, "Batches per optimizer step")->capture_default_str();
  cmd.add_option("--clip-norm", o.train.clip_norm, "Clip the global gradient norm (0: off)")->capture_default_str();
  cmd.add_option("--val-every", o.train.val_every, "Steps between validations (0: each epoch)");
  cmd.add_option("--patience", o.train.patience, "Validations without improvement before stopping (0: never)");
  cmd.add_option("--min-delta", o.train.min_delta, "Smallest Dice gain that counts as improvement");
  cmd.add_option("--seed", o.train.seed, "Seed of the weights, splits, patches, augmentation and dropout")->capture_default_str();
  cmd.add_option("--workers", o.train.workers, "Data loader threads")->capture_default_str();
  cmd.add_option("--run-dir,-o", o.run_dir, "Run folder (resumed when it holds a checkpoint)")->capture_default_str();
  cmd.add_flag("--resume", o.resume, "Require a checkpoint in --run-dir to continue from (a run folder that "
                                     "holds one is resumed anyway)");
  cmd.add_option("--load-weights", o.load_weights, "Start from another run's weights (fine-tuning)");
  cmd.add_option("--freeze", o.train.freeze, "Keep parameters with these name prefixes fixed, e.g. enc0,enc1")
      ->delimiter(',');
  cmd.add_option("--overlap", o.train.window.overlap, "Sliding-window overlap in validation")->capture_default_str();
  cmd.add_flag("--mirror", o.train.window.mirror, "Average validation over flips");
  cmd.add_flag("--summary", o.summary, "Print the model summary before training");
  cmd.add_flag("--verbose,-v", o.train.verbose, "A line after every step, and each case as it is loaded");
  add_device_options(cmd, o.device);
  cmd.add_flag("--sync-batchnorm", o.train.sync_batchnorm,
               "Data parallel: batch norm statistics over the global batch (default: each rank's own)");
  cmd.add_option("--rendezvous", o.rendezvous,
                 "Shared folder where data-parallel ranks meet (default: RUN_DIR/.rendezvous)");
}

LossKind loss_kind(const std::string& s) {
  static const std::map<std::string, LossKind> kinds{
      {"bce", LossKind::bce},         {"ce", LossKind::ce},
      {"weighted_ce", LossKind::weighted_ce}, {"dice", LossKind::dice},
      {"jaccard", LossKind::jaccard}, {"tversky", LossKind::tversky},
      {"focal_tversky", LossKind::focal_tversky}, {"dice_ce", LossKind::dice_ce}};
  return kinds.at(s);
}

// The options that depend on one another, checked and filled in.
void resolve(CLI::App& cmd, TrainCli& o) {
  const bool synthetic = o.data.path.empty();
  if (synthetic && !cmd.count("--start-filters")) o.model.config.start_filters = 16;
  if (synthetic && !cmd.count("--depth")) o.model.config.depth = 3;
  if (synthetic && !cmd.count("--steps") && !cmd.count("--epochs")) o.train.steps = 300;
  if (synthetic && !cmd.count("--batch-size")) o.model.batch = 4;
  if (synthetic && !cmd.count("--val-every")) o.train.val_every = 50;
  o.data.synthetic_dims = o.model.config.dims;
  o.data.synthetic_size = o.model.config.dims == 2 ? 128 : 48;
  if (o.image_width || o.image_height || o.image_depth) {
    if (!o.model.size.empty()) throw std::invalid_argument("give --size or --image-width/--image-height, not both");
    if (!o.image_width || !o.image_height) throw std::invalid_argument("--image-width needs --image-height");
    o.model.size = std::to_string(o.image_width) + "x" + std::to_string(o.image_height) +
                   (o.image_depth ? "x" + std::to_string(o.image_depth) : "");
  }
  if (o.model.size.empty()) o.model.size = synthetic ? (o.model.config.dims == 2 ? "64x64" : "32x32x32")
                                                     : (o.model.config.dims == 2 ? "256x256" : "128x128x64");
  o.model.resolve();
  LabelSpec& labels = o.data.labels;
  labels.classes = o.model.config.classes;
  if (!std::isnan(o.label_threshold)) labels.binarize = true, labels.threshold = o.label_threshold;
  if (!o.label_map.empty()) labels.map = parse_label_map(o.label_map);
  if (!std::isnan(labels.object_value) && !labels.map.empty())
    throw std::invalid_argument("give --object-class or --label-map, not both");
  ChannelNorm norm;
  norm.scheme = parse_norm_scheme(o.norm);
  if (norm.scheme == NormScheme::window) {
    if (o.window.size() != 2) throw std::invalid_argument("--normalize window needs --window lo,hi");
    norm.lo = o.window[0], norm.hi = o.window[1];
  }
  o.data.norm = {norm};
  o.data.seed = o.train.seed;
  o.data.verbose = o.train.verbose;
  o.model.config.seed = o.train.seed;
  const Shape in = o.model.input_shape();
  o.data.patch.size = {in.d, in.h, in.w};
  o.data.augment.rate = o.augmentation_rate;
  if (o.no_augmentation) o.data.augment.off();
  const Head head = o.model.config.head;
  o.train.loss = make_loss(loss_kind(o.loss), head, static_cast<float>(o.tversky_beta),
                           static_cast<float>(o.focal_gamma), o.class_weights);
  o.train.loss.ignore_label = labels.ignore_label;
  static const std::map<std::string, OptimizerKind> opts{
      {"sgd", OptimizerKind::sgd}, {"adam", OptimizerKind::adam}, {"adamw", OptimizerKind::adamw}};
  o.train.optimizer.kind = opts.at(o.optimizer);
  static const std::map<std::string, ScheduleKind> schedules{{"constant", ScheduleKind::constant},
                                                             {"step", ScheduleKind::step},
                                                             {"poly", ScheduleKind::poly},
                                                             {"cosine", ScheduleKind::cosine}};
  o.train.schedule.kind = schedules.at(o.schedule);
  o.train.schedule.base_lr = o.lr;
  o.train.schedule.warmup_steps = o.warmup;
  o.train.run_dir = o.run_dir;
  o.train.progress_bar = isatty(fileno(stdout));
}

std::string command_line(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) s += (i ? " " : "") + std::string(argv[i]);
  return s;
}

// Prediction on the held-out cases with the best weights: Dice, pixel accuracy,
// overlays of 2D cases.
void final_report(UNet& model, const PreparedData& data, const TrainCli& o) {
  if (data.val.empty()) return;
  const std::string best = (fs::path(o.run_dir) / "best.safetensors").string();
  if (fs::exists(best)) load_weights(model, read_safetensors(best), best);
  fs::create_directories(fs::path(o.run_dir) / "overlays");
  const UNetConfig& c = model.config();
  Confusion counts(c.classes);
  for (size_t i = 0; i < data.val.size(); ++i) {
    const Sample& s = data.val[i];
    std::vector<float> logits = predict_logits(model, s.image.data(), {s.d, s.h, s.w}, o.train.window);
    const Shape shape{1, c.head == Head::sigmoid ? 1 : c.classes, s.d, s.h, s.w, s.dims};
    confusion_accumulate(Tensor(logits.data(), shape), s.label.data(), c.head, o.data.labels.ignore_label, counts);
    if (s.dims != 2 || i >= 8) continue;
    std::vector<int32_t> pred(static_cast<size_t>(s.spatial()));
    for (int64_t v = 0; v < s.spatial(); ++v) {
      if (c.head == Head::sigmoid) {
        pred[v] = logits[v] > 0;
        continue;
      }
      int best_k = 0;
      for (int k = 1; k < c.classes; ++k)
        if (logits[k * s.spatial() + v] > logits[best_k * s.spatial() + v]) best_k = k;
      pred[v] = best_k;
    }
    write_png((fs::path(o.run_dir) / "overlays" / (data.val_ids[i] + ".png")).string(),
              overlay_rgb(s.image.data(), s.h, s.w, s.label.data(), pred.data()));
  }
  int64_t correct = 0, total = 0;
  for (int k = 0; k < c.classes; ++k) correct += counts.tp[k], total += counts.tp[k] + counts.fn[k];
  std::printf("held-out %zu case(s), best weights: ", data.val.size());
  for (int k = 1; k < c.classes; ++k) std::printf("class %d Dice %.4f IoU %.4f, ", k, dice(counts, k), iou(counts, k));
  std::printf("pixel accuracy %.4f\n", total ? double(correct) / double(total) : 0.0);
}

void write_learning_curve(const std::string& run_dir) {
  std::ifstream log(fs::path(run_dir) / "metrics.jsonl");
  std::vector<CurvePoint> loss, dice;
  for (std::string line; std::getline(log, line);) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    if (j.contains("loss")) loss.push_back({j["step"].get<double>(), j["loss"].get<double>()});
    if (j.contains("val_mean_dice")) dice.push_back({j["step"].get<double>(), j["val_mean_dice"].get<double>()});
  }
  write_png((fs::path(run_dir) / "learning_curve.png").string(), learning_curve(loss, dice));
}

}  // namespace

void add_train_command(CLI::App& app, int argc, char** argv) {
  auto o = std::make_shared<TrainCli>();
  CLI::App* cmd = app.add_subcommand("train", "Train a U-Net (with no --data: on synthetic EM-like images)");
  add_train_options(*cmd, *o);
  const std::string command = command_line(argc, argv);
  cmd->callback([o, cmd, command] {
    const RankInfo who = rank_info_from_environment();
    const bool lead = who.rank == 0;
    if (!lead) std::freopen("/dev/null", "w", stdout);  // one voice in the job's log; errors still on stderr
    resolve(*cmd, *o);
    // Before any work: a missing GPU fails fast.
    const std::shared_ptr<Backend> backend = o->device.backend(who.local_rank);
    o->train.loss_scaling.dynamic = parse_precision(o->device.precision) == Precision::fp16;
    if (o->model.batch % who.world)
      throw std::invalid_argument("--batch-size " + std::to_string(o->model.batch) + " is the global batch; it does "
                                  "not divide over " + std::to_string(who.world) + " ranks: use a multiple of " +
                                  std::to_string(who.world));
    const bool has_checkpoint = fs::exists(fs::path(o->run_dir) / "last.state.safetensors");
    if (o->resume && !has_checkpoint)
      throw std::invalid_argument("--resume: " + o->run_dir + " holds no checkpoint (last.state.safetensors) to resume");
    if (has_checkpoint && !o->load_weights.empty())
      throw std::invalid_argument("--load-weights: " + o->run_dir + " already holds a checkpoint, which would replace "
                                  "them; use a new --run-dir to start from other weights");
    fs::create_directories(o->run_dir);
    std::printf("%s\n", o->model.config.str().c_str());
    const auto data = prepare_data(o->data);
    if (data->channels != o->model.config.in_channels)
      throw std::invalid_argument("the images have " + std::to_string(data->channels) + " channel(s): pass "
                                  "--input-channels " + std::to_string(data->channels));
    UNet model(o->model.config);
    if (!o->load_weights.empty()) {
      const Safetensors f = read_safetensors(o->load_weights);
      load_weights(model, f, o->load_weights);
      std::printf("weights from %s\n", o->load_weights.c_str());
    }
    model.to(backend);
    Shape batch = o->model.input_shape();
    batch.n /= who.world;  // per rank
    model.plan(batch);
    if (model.backend().is_cuda()) std::printf("on %s\n", model.backend().name().c_str());
    if (o->summary)
      std::printf("%lld parameters, %.1f MiB planned for batch %s, %.2f GFLOP per step\n",
                  (long long)model.parameter_count(), double(model.arena_bytes()) / (1 << 20), batch.str().c_str(),
                  model.train_step_flops() / 1e9);
    nlohmann::json run{{"command", command},
                       {"version", UNET_VERSION},
                       {"model", nlohmann::json::parse(config_to_json(o->model.config))},
                       {"normalization", to_json(data->normalization)},
                       {"train_cases", data->train_ids},
                       {"val_cases", data->val_ids}};
    if (lead) {
      write_file_atomic((fs::path(o->run_dir) / "run.json").string(), run.dump(2) + "\n");
      // The options as given, in the form --config reads: the same run again.
      write_file_atomic((fs::path(o->run_dir) / "config.ini").string(),
                        "# unet train --config " + (fs::path(o->run_dir) / "config.ini").string() + "\n[train]\n" +
                            cmd->config_to_str(false, false));
    }
    Shape one = batch;
    one.n = 1;
    TrainData td;
    td.batch = batch;
    td.samples_per_epoch = samples_per_epoch(static_cast<int64_t>(data->train.size()), o->data.augment);
    td.make_sample = make_sampler(data, o->data.patch, o->data.augment, o->train.seed, one);
    td.validation = data->val;
    if (o->save_augmented > 0 && lead) {
      const fs::path dir = fs::path(o->run_dir) / "augmented";
      fs::create_directories(dir);
      std::vector<float> image(one.count());
      std::vector<int32_t> label(one.spatial());
      for (int i = 0; i < o->save_augmented && i < td.samples_per_epoch; ++i) {
        td.make_sample(0, i, image.data(), label.data());
        Sample s;
        s.c = one.c, s.d = one.d, s.h = one.h, s.w = one.w, s.dims = one.dims;
        s.image = image;
        s.label = label;
        save_sample(s, (dir / ("sample_" + std::to_string(i))).string());
      }
      std::printf("%d augmented samples in %s\n", o->save_augmented, dir.c_str());
    }
    o->train.metadata = {{"unet.normalization", to_json(data->normalization).dump()},
                         {"unet.patch", o->model.size},
                         {"unet.command", command}};
    std::signal(SIGTERM, request_stop);
    std::signal(SIGUSR1, request_stop);
    std::unique_ptr<Communicator> comm, device_comm;
    std::string rendezvous;
    if (who.world > 1) {
      if (who.job.empty())
        throw std::invalid_argument("WORLD_SIZE=" + std::to_string(who.world) + " outside Slurm: set UNET_JOB_ID to a "
                                    "name unique to this launch (the ranks meet in a folder of that name)");
      rendezvous = (fs::path(o->rendezvous.empty() ? o->run_dir + "/.rendezvous" : o->rendezvous) / who.job).string();
      comm = make_gloo_communicator(who, rendezvous);
      o->train.comm = comm.get();
#ifdef UNET_CUDA
      if (backend->is_cuda()) {
        device_comm = make_nccl_communicator(who, rendezvous + "/nccl", backend->stream());
        o->train.device_comm = device_comm.get();
      }
#endif
      std::printf("data parallel: %d ranks (%s), %lld samples per rank of a global batch of %d\n", who.world,
                  backend->is_cuda() ? "NCCL, Gloo for host values" : "Gloo", (long long)batch.n, o->model.batch);
    }
    const TrainResult r = train(model, td, o->train, &g_stop);
    if (lead && !rendezvous.empty()) fs::remove_all(rendezvous);  // train() ended on a barrier: nobody needs it
    if (!lead) throw ExitStatus{r.status == TrainResult::Status::preempted ? kExitPreempted : 0};
    std::printf("%lld steps, %.1f samples/s, last loss %.4f\n", (long long)r.steps, r.samples_per_second, r.last_loss);
    if (r.status == TrainResult::Status::preempted) {
      std::printf("stopped by a signal at step %lld; checkpoint written: run again with --run-dir %s to resume\n",
                  (long long)r.steps, o->run_dir.c_str());
      throw ExitStatus{kExitPreempted};
    }
    write_learning_curve(o->run_dir);
    final_report(model, *data, *o);
    std::printf("run folder: %s (best.safetensors, metrics.jsonl, learning_curve.png, overlays/)\n",
                o->run_dir.c_str());
  });
}

}  // namespace unet
