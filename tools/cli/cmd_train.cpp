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

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "engine/evaluate/render.h"
#include "engine/parallel/communicator.h"
#include "engine/plan/planner.h"
#include "io/data/slices.h"
#include "engine/storage/checkpoint.h"
#include "engine/train/epoch_plan.h"
#include "engine/train/trainer.h"
#include "io/data/pipeline.h"
#include "io/png.h"
#include "kernels/head.h"
#include "tools/cli/choice_option.h"
#include "tools/cli/commands.h"
#include "tools/cli/device_options.h"
#include "tools/cli/label_options.h"
#include "tools/cli/launch_ranks.h"
#include "tools/cli/model_options.h"
#include "tools/cli/planning.h"

namespace unet {
namespace {

namespace fs = std::filesystem;

std::atomic<bool> g_stop{false};
extern "C" void request_stop(int) { g_stop = true; }

struct TrainCli {
  ModelOptions model;
  DataOptions data;
  TrainOptions train;
  std::string loss = "dice_ce", optimizer = "adam", schedule = "poly", norm = "zscore", run_dir = "run";
  std::string load_weights, rendezvous, plan, configuration, slice_axis = "z";
  LabelOptions labels;
  std::vector<ChannelNorm> planned_norm;  // --plan's normalization, unless --normalize says otherwise
  std::vector<double> window, spacing;
  std::vector<float> class_weights;
  double lr = 1e-3, tversky_beta = 0.7, focal_gamma = 0.75;
  int64_t image_width = 0, image_height = 0, image_depth = 0, warmup = 0;
  int augmentation_rate = 0, save_augmented = 0;
  DeviceOptions device;
  int ranks = 1;
  bool no_augmentation = false, summary = false, resume = false;  // resume: --resume given (with or without a checkpoint)
};

void add_train_options(CLI::App& cmd, TrainCli& o) {
  add_model_options(cmd, o.model);
  cmd.add_option("--plan", o.plan, "A plan from `unet plan`: its model, patch, batch and normalization (options "
                                   "given here override it)");
  cmd.add_option("--configuration", o.configuration, "The plan's configuration (default: 3d where planned)")
      ->check(CLI::IsMember({"2d", "3d"}));
  cmd.add_option("--data", o.data.path, "Dataset: a folder with image/ and label/, a CSV manifest, or an nnU-Net "
                                        "folder (imagesTr/, labelsTr/, dataset.json); none: synthetic EM data");
  cmd.add_option("--val-cases", o.data.val_cases, "Case ids held out for validation")->delimiter(',');
  cmd.add_option("--val-fraction", o.data.val_fraction, "Fraction held out for validation")->capture_default_str();
  cmd.add_option("--fold", o.data.fold, "Cross-validation fold (0-based) of --folds");
  cmd.add_option("--folds", o.data.folds, "Folds for --fold")->capture_default_str();
  add_label_options(cmd, o.labels);
  cmd.add_option("--slice-axis", o.slice_axis,
                 "A 2D net on volumes trains on their slices along this axis (z, y or x; a --plan's by default) and "
                 "predicts them slice by slice")
      ->check(CLI::IsMember({"z", "y", "x"}))
      ->capture_default_str();
  cmd.add_option("--spacing", o.spacing,
                 "Resample every case to this voxel spacing x,y[,z] when it is read (images linear, labels "
                 "per-class linear; 0 or no z: that axis as it is); default: a --plan's spacing, else the cases' own")
      ->delimiter(',');
  add_choice(cmd, "--normalize", o.norm, kNormSchemes, "Intensity normalization");
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
  add_choice(cmd, "--optimizer", o.optimizer, kOptimizers, "Optimizer");
  cmd.add_option("--momentum", o.train.optimizer.momentum, "SGD momentum")->capture_default_str();
  cmd.add_flag("--nesterov", o.train.optimizer.nesterov, "Nesterov momentum (SGD)");
  cmd.add_option("--weight-decay", o.train.optimizer.weight_decay, "Weight decay")->capture_default_str();
  add_choice(cmd, "--schedule", o.schedule, kSchedules, "Learning-rate schedule");
  cmd.add_option("--warmup", o.warmup, "Linear warm-up steps");
  add_choice(cmd, "--loss", o.loss, kLossKinds, "Loss");
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
  cmd.add_option("--resume", o.train.resume_from,
                 "Continue from the checkpoint folder named (run/checkpoints/step-000090), or with no value "
                 "require one in --run-dir (a run folder that holds one is resumed anyway)")
      ->expected(0, 1);
  cmd.add_option("--load-weights", o.load_weights, "Start from another run's weights (fine-tuning)");
  cmd.add_option("--ranks", o.ranks, "Data-parallel ranks started on this machine, as srun -n N would (each its "
                                     "own slice of the cores; --gpus N implies --ranks N)")
      ->check(CLI::PositiveNumber);
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

// The plan's choices, for every model and data option the command line leaves
// unset. A dataset given with no model options is planned first (nnU-Net's
// way), into the run folder's plan.json.
void apply_plan(CLI::App& cmd, TrainCli& o) {
  if (o.plan.empty() && !o.data.path.empty() && !model_options_given(cmd)) {
    std::printf("no model options: planning %s first (any option given overrides the plan)\n", o.data.path.c_str());
    PlanRequest r;
    r.data = o.data.path;
    r.classes = cmd.count("--classes") ? o.model.config.classes : 0;
    r.labels = o.labels;
    r.backend = o.device.backend();
    fs::create_directories(o.run_dir);
    o.plan = (fs::path(o.run_dir) / "plan.json").string();
    plan_and_write(r, o.plan);
  }
  if (o.plan.empty()) {
    if (cmd.count("--configuration")) throw std::invalid_argument("--configuration needs --plan");
    return;
  }
  if (o.data.path.empty()) throw std::invalid_argument("--plan needs --data, the dataset it was planned for");
  const PlanChoice p = read_plan(o.plan, o.configuration);
  const PlannedConfiguration& c = p.configuration;
  auto unset = [&cmd](const char* option) { return cmd.count(option) == 0; };
  UNetConfig& m = o.model.config;
  if (unset("--dims")) m.dims = c.model.dims;
  if (unset("--size") && unset("--image-width")) o.model.size = c.size_text();
  if (unset("--batch-size")) o.model.batch = c.batch;
  if (unset("--depth")) m.depth = c.model.depth;
  // The plan's windows are one per planned level: another depth pools 2 along every axis.
  if (unset("--pooling") && unset("--depth")) o.model.pooling = pooling_text(c.model.pooling, c.model.dims);
  if (unset("--start-filters")) m.start_filters = c.model.start_filters;
  if (unset("--max-filters")) m.max_filters = c.model.max_filters;
  if (unset("--classes")) m.classes = c.model.classes;
  if (unset("--norm")) o.model.norm = choice_name(kNormChoices, c.model.norm);
  if (unset("--deep-supervision")) m.deep_supervision = c.model.deep_supervision;
  if (unset("--activation")) o.model.activation = choice_name(kActivations, c.model.activation.kind);
  if (unset("--normalize")) o.planned_norm = p.normalization.channels;
  if (unset("--slice-axis")) o.slice_axis = slice_axis_name(p.slice_axis);
  if (unset("--spacing")) {
    o.spacing.assign(p.spacing.begin(), p.spacing.begin() + (p.data_dims == 3 ? 3 : 2));
    // Slices of volumes: resampled in their plane, the slicing axis kept (nnU-Net's 2D).
    if (c.model.dims == 2 && p.data_dims == 3) o.spacing[2 - p.slice_axis] = 0;
  }
  std::printf("plan %s, configuration %s (options given here override it)\n", o.plan.c_str(), c.name.c_str());
}

// The options that depend on one another, checked and filled in.
void resolve(CLI::App& cmd, TrainCli& o) {
  apply_plan(cmd, o);
  o.resume = cmd.count("--resume") > 0;
  const bool synthetic = o.data.path.empty();
  if (synthetic && !cmd.count("--start-filters")) o.model.config.start_filters = 16;
  if (synthetic && !cmd.count("--depth")) o.model.config.depth = 3;
  if (synthetic && !cmd.count("--steps") && !cmd.count("--epochs")) o.train.steps = 300;
  if (synthetic && !cmd.count("--batch-size")) o.model.batch = 4;
  if (synthetic && !cmd.count("--val-every")) o.train.val_every = 50;
  o.data.synthetic_dims = o.data.net_dims = o.model.config.dims;
  o.data.slice_axis = parse_slice_axis(o.slice_axis);
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
  if (!o.spacing.empty()) {
    const bool ok = (o.spacing.size() == 2 || o.spacing.size() == 3) &&
                    std::all_of(o.spacing.begin(), o.spacing.end(), [](double v) { return v >= 0 && std::isfinite(v); }) &&
                    std::any_of(o.spacing.begin(), o.spacing.end(), [](double v) { return v > 0; });
    if (!ok)
      throw std::invalid_argument("--spacing: expected 2 or 3 spacings x,y[,z], such as 0.8,0.8,2.5 (0: that axis "
                                  "as it is)");
    o.data.spacing = {o.spacing[0], o.spacing[1], o.spacing.size() == 3 ? o.spacing[2] : 0.0};
  }
  const LabelSpec& labels = o.data.labels = resolve_labels(o.labels, o.model.config.classes);
  ChannelNorm norm;
  norm.scheme = parse_norm_scheme(o.norm);
  if (norm.scheme == NormScheme::window) {
    if (o.window.size() != 2) throw std::invalid_argument("--normalize window needs --window lo,hi");
    norm.lo = o.window[0], norm.hi = o.window[1];
  }
  o.data.norm = o.planned_norm.empty() ? std::vector<ChannelNorm>{norm} : o.planned_norm;
  o.data.seed = o.train.seed;
  o.data.verbose = o.train.verbose;
  o.model.config.seed = o.train.seed;
  const Shape in = o.model.input_shape();
  o.data.patch.size = in.grid();
  o.data.augment.rate = o.augmentation_rate;
  if (o.no_augmentation) o.data.augment.off();
  const Head head = o.model.config.head;
  o.train.loss = make_loss(choose(kLossKinds, o.loss, "--loss"), head, static_cast<float>(o.tversky_beta),
                           static_cast<float>(o.focal_gamma), o.class_weights);
  o.train.loss.ignore_label = labels.ignore_label;
  o.train.optimizer.kind = choose(kOptimizers, o.optimizer, "--optimizer");
  o.train.schedule.kind = choose(kSchedules, o.schedule, "--schedule");
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

// Prediction on the held-out cases with the best weights: Dice, IoU, pixel
// accuracy, overlays of the first 2D cases.
void final_report(UNet& model, const PreparedData& data, const TrainCli& o) {
  if (data.val.empty()) return;
  const RunFolder folder(o.run_dir);
  folder.load_best(model);
  fs::create_directories(folder.path("overlays"));
  const UNetConfig& c = model.config();
  const auto overlay = [&](size_t i, const std::vector<float>& logits) {
    const Sample& s = data.val[i];
    if (s.dims != 2 || i >= 8) return;
    std::vector<int32_t> pred(static_cast<size_t>(s.spatial()));
    predict_classes(logits.data(), c.head, c.classes, s.spatial(), pred.data());
    write_png(folder.path("overlays/" + data.val_ids[i] + ".png"),
              overlay_rgb(s.image.data(), s.h, s.w, s.label.data(), pred.data()));
  };
  const Scores scores = score_cases(model, data.val, o.train.window, o.data.labels.ignore_label, overlay);
  std::printf("held-out %zu case(s), best weights: ", data.val.size());
  for (int k = 1; k < c.classes; ++k) std::printf("class %d Dice %.4f IoU %.4f, ", k, scores.dice[k], scores.iou[k]);
  std::printf("pixel accuracy %.4f\n", scores.pixel_accuracy);
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

// The run's description, and the options as given in the form --config reads:
// the same run again.
void write_run_files(const RunFolder& folder, const TrainCli& o, const PreparedData& data, const CLI::App& cmd,
                     const std::string& command) {
  const nlohmann::json run{{"command", command},
                           {"version", UNET_VERSION},
                           {"model", nlohmann::json::parse(config_to_json(o.model.config))},
                           {"normalization", to_json(data.normalization)},
                           {"spacing", data.spacing != Spacing{0, 0, 0} ? nlohmann::json(data.spacing) : nlohmann::json()},
                           {"train_cases", data.train_ids},
                           {"val_cases", data.val_ids}};
  folder.write("run.json", run.dump(2) + "\n");
  folder.write("config.ini", "# unet train --config " + folder.path("config.ini") + "\n[train]\n" +
                                 cmd.config_to_str(false, false));
}

// What the trainer takes: the global batch, and the sample maker over the prepared data.
TrainData make_train_data(const std::shared_ptr<PreparedData>& data, const TrainCli& o) {
  TrainData td;
  td.batch = o.model.input_shape();
  Shape one = td.batch;
  one.n = 1;
  td.samples_per_epoch = samples_per_epoch(static_cast<int64_t>(data->train.size()), o.data.augment);
  td.make_sample = make_sampler(data, o.data.patch, o.data.augment, o.train.seed, one);
  td.validation = data->val;
  return td;
}

// The first `count` samples of epoch 0, as the network sees them.
void save_augmented(const TrainData& td, const RunFolder& folder, int count) {
  const fs::path dir = folder.path("augmented");
  fs::create_directories(dir);
  Sample s;
  s.c = td.batch.c, s.d = td.batch.d, s.h = td.batch.h, s.w = td.batch.w, s.dims = td.batch.dims;
  s.image.resize(static_cast<size_t>(s.c * s.spatial()));
  s.label.resize(static_cast<size_t>(s.spatial()));
  for (int i = 0; i < count && i < td.samples_per_epoch; ++i) {
    td.make_sample(0, i, s.image.data(), s.label.data());
    save_sample(s, (dir / ("sample_" + std::to_string(i))).string());
  }
  std::printf("%d augmented samples in %s\n", count, dir.c_str());
}

// The ranks of a data-parallel launch meet: Gloo for host values, NCCL for a
// GPU's tensors. Nothing for one process.
struct Ranks {
  std::unique_ptr<Communicator> comm, device_comm;
  std::string rendezvous;
};
Ranks join_ranks(const RankInfo& who, const TrainCli& o, Backend& backend) {
  Ranks r;
  if (who.world == 1) return r;
  if (who.job.empty())
    throw std::invalid_argument("WORLD_SIZE=" + std::to_string(who.world) + " outside Slurm: set UNET_JOB_ID to a "
                                "name unique to this launch (the ranks meet in a folder of that name)");
  r.rendezvous = (fs::path(o.rendezvous.empty() ? o.run_dir + "/.rendezvous" : o.rendezvous) / who.job).string();
  r.comm = make_gloo_communicator(who, r.rendezvous);
#ifdef UNET_CUDA
  if (backend.is_cuda()) r.device_comm = make_nccl_communicator(who, r.rendezvous + "/nccl", backend.stream());
#endif
  std::printf("data parallel: %d ranks (%s), %lld samples per rank of a global batch of %d\n", who.world,
              backend.is_cuda() ? "NCCL, Gloo for host values" : "Gloo",
              (long long)per_rank_batch(o.model.input_shape(), who.world).n, o.model.batch);
  return r;
}

// After training: the exit status of a stopped run, else the learning curve and the report.
void finish(const TrainResult& r, UNet& model, const PreparedData& data, const TrainCli& o) {
  std::printf("%lld steps, %.1f samples/s, last loss %.4f\n", (long long)r.steps, r.samples_per_second, r.last_loss);
  if (r.status == TrainResult::Status::preempted) {
    std::printf("stopped by a signal at step %lld; checkpoint written: run again with --run-dir %s to resume\n",
                (long long)r.steps, o.run_dir.c_str());
    throw ExitStatus{kExitPreempted};
  }
  write_learning_curve(o.run_dir);
  final_report(model, data, o);
  std::printf("run folder: %s (best.safetensors, metrics.jsonl, learning_curve.png, overlays/)\n", o.run_dir.c_str());
}

}  // namespace

void add_train_command(CLI::App& app, int argc, char** argv) {
  auto o = std::make_shared<TrainCli>();
  CLI::App* cmd = app.add_subcommand("train", "Train a U-Net (with no --data: on synthetic EM-like images)");
  add_train_options(*cmd, *o);
  const std::string command = command_line(argc, argv);
  const std::vector<std::string> args(argv, argv + argc);
  cmd->callback([o, cmd, command, args] {
    const RankInfo who = rank_info_from_environment();
    // --gpus N: N ranks of one GPU each (their local ranks pick the GPUs).
    if (o->device.gpus > 1) {
      if (cmd->count("--ranks") && o->ranks != o->device.gpus)
        throw std::invalid_argument("--gpus " + std::to_string(o->device.gpus) + " starts as many ranks; leave "
                                    "--ranks " + std::to_string(o->ranks) + " out");
      o->ranks = o->device.gpus, o->device.gpus = 1;
    }
    if (o->ranks > 1 && who.world == 1)
      throw ExitStatus{launch_ranks(o->ranks, args, o->rendezvous.empty() ? o->run_dir + "/.rendezvous" : o->rendezvous)};
    if (o->ranks > 1 && who.world != o->ranks)
      throw std::invalid_argument("--ranks " + std::to_string(o->ranks) + ": this process is already rank " +
                                  std::to_string(who.rank) + " of " + std::to_string(who.world) +
                                  " (srun -n, or RANK/WORLD_SIZE): leave --ranks out");
    // From the start: a stop requested while the data loads ends the run after its first step, checkpoint written.
    std::signal(SIGTERM, request_stop);
    std::signal(SIGUSR1, request_stop);
    const bool lead = who.rank == 0;
    if (!lead) std::freopen("/dev/null", "w", stdout);  // one voice in the job's log; errors still on stderr
    resolve(*cmd, *o);
    // Before any work: a missing GPU, a batch that does not divide, a run folder refused.
    const std::shared_ptr<Backend> backend = o->device.backend(who.local_rank);
    o->train.loss_scaling.dynamic = parse_precision(o->device.precision) == Precision::fp16;
    const Shape batch = per_rank_batch(o->model.input_shape(), who.world);
    const RunFolder folder(o->run_dir);
    folder.start(o->resume, o->train.resume_from, !o->load_weights.empty());
    std::printf("%s\n", o->model.config.str().c_str());
    const auto data = prepare_data(o->data);
    if (data->channels != o->model.config.in_channels)
      throw std::invalid_argument("the images have " + std::to_string(data->channels) + " channel(s): pass "
                                  "--input-channels " + std::to_string(data->channels));
    UNet model(o->model.config);
    if (!o->load_weights.empty()) {
      load_weights(model, read_safetensors(o->load_weights), o->load_weights);
      std::printf("weights from %s\n", o->load_weights.c_str());
    }
    model.to(backend);
    model.plan(batch);
    if (model.backend().is_cuda()) std::printf("on %s\n", model.backend().name().c_str());
    if (o->summary)
      std::printf("%lld parameters, %.1f MiB planned for batch %s, %.2f GFLOP per step\n",
                  (long long)model.parameter_count(), double(model.arena_bytes()) / (1 << 20), batch.str().c_str(),
                  model.train_step_flops() / 1e9);
    if (lead) write_run_files(folder, *o, *data, *cmd, command);
    const TrainData td = make_train_data(data, *o);
    if (o->save_augmented > 0 && lead) save_augmented(td, folder, o->save_augmented);
    o->train.metadata = {{"unet.normalization", to_json(data->normalization).dump()},
                         {"unet.patch", o->model.size},
                         {"unet.command", command}};
    // Where given, the spacing the model learned at: predict resamples to it and back.
    if (data->spacing != Spacing{0, 0, 0}) o->train.metadata["unet.spacing"] = nlohmann::json(data->spacing).dump();
    if (data->slice_axis >= 0) o->train.metadata["unet.slice_axis"] = slice_axis_name(data->slice_axis);
    const Ranks ranks = join_ranks(who, *o, *backend);
    o->train.comm = ranks.comm.get();
    o->train.device_comm = ranks.device_comm.get();
    const TrainResult r = train(model, td, o->train, &g_stop);
    if (lead && !ranks.rendezvous.empty()) fs::remove_all(ranks.rendezvous);  // train() ended on a barrier
    if (!lead) throw ExitStatus{r.status == TrainResult::Status::preempted ? kExitPreempted : 0};
    finish(r, model, *data, *o);
  });
}

}  // namespace unet
