// unet bench: times one training step (forward, dice_ce loss, backward, Adam)
// and one inference forward pass of a U-Net on random data, and prints one JSON
// object (README, "Benchmarks"): ms/step, images/s, FLOP/s and, with
// --peak-tflops, the model FLOP utilization; the planned arena and the peak
// resident memory. --save-weights keeps the model for `unet export`. The PyTorch and MONAI baselines (bench/baselines) print the
// same schema so that bench/compare.py can put them side by side.
#include <omp.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/device/blas_core.h"
#include "engine/device/ops.h"
#include "kernels/conv_dnnl.h"
#include "engine/storage/checkpoint.h"
#include "engine/train/loss_scaler.h"
#include "engine/train/train_step.h"
#include "tools/cli/commands.h"
#include "tools/cli/device_options.h"
#include "tools/cli/model_options.h"

namespace unet {
namespace {

struct BenchCli {
  ModelOptions model;
  DeviceOptions device;
  int steps = 5, warmup = 2;
  double peak_tflops = 0;
  std::string save_weights;
};

double seconds() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Seconds per call of f, after `warmup` untimed calls; waits for the backend
// before reading the clock (a GPU queues work and returns).
template <class F>
double time_per_call(Backend& be, F&& f, int steps, int warmup) {
  for (int i = 0; i < warmup; ++i) f();
  be.synchronize();
  const double t0 = seconds();
  for (int i = 0; i < steps; ++i) f();
  be.synchronize();
  return (seconds() - t0) / steps;
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchCli>();
  o->model.size = "512x512";
  o->model.batch = 8;
  CLI::App* cmd = app.add_subcommand("bench", "Time a training step and inference; print JSON");
  add_model_options(*cmd, o->model);
  add_device_options(*cmd, o->device);
  cmd->add_option("--steps", o->steps, "Timed steps")->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "Untimed steps first (with CUDA Graphs the first runs eagerly, the second captures)")->capture_default_str();
  cmd->add_option("--peak-tflops", o->peak_tflops,
                  "The device's peak TFLOP/s at the chosen precision, for the model FLOP utilization");
  cmd->add_option("--save-weights", o->save_weights,
                  "Also write the benchmarked model's weights (to export it and time it in another runtime)");
  cmd->callback([o] {
    o->model.resolve();
    if (o->steps < 1 || o->warmup < 0) throw std::invalid_argument("--steps must be at least 1, --warmup at least 0");
    UNet model(o->model.config);
    model.to(o->device.backend());
    Backend& be = model.backend();
    const Shape input = o->model.input_shape();
    model.plan(input);
    const Shape out = model.output_shape();
    std::vector<float> x(static_cast<size_t>(input.count()));
    std::vector<int32_t> labels(static_cast<size_t>(out.n * out.spatial()));
    std::mt19937 rng(0);
    std::normal_distribution<float> normal;
    for (float& v : x) v = normal(rng);
    for (int32_t& l : labels) l = static_cast<int32_t>(rng() & 1);
    const Tensor in = model.stage_input(x.data());
    const int32_t* label = model.stage_labels(labels.data());
    const int64_t n = model.parameter_count();
    // The trainer's step (Dice + CE, Adam), on this one staged batch: with
    // CUDA Graphs on, one graph per step.
    StepSettings settings;
    settings.loss = make_loss(LossKind::dice_ce, model.config().head);
    TrainStep step(model, settings);
    // fp16: a fixed loss scale, unscaled by the step, as in training; a step
    // whose gradients overflowed anyway is counted (it runs every kernel all the same).
    const float loss_scale = parse_precision(o->device.precision) == Precision::fp16 ? kFixedFp16Scale : 1.f;
    const StagedBatch batch{in, label};
    int64_t steps = 0, skipped = 0;

    const double infer_s = time_per_call(be, [&] { model.forward(in, false); }, o->steps, o->warmup);
    const double train_s = time_per_call(
        be,
        [&] {
          const auto r = step.run(steps++, 1e-3f, loss_scale, [&] { return std::optional<StagedBatch>(batch); });
          skipped += r && !r->taken;
        },
        o->steps, o->warmup);

    const double flops = model.train_step_flops(), tflops = flops / train_s / 1e12;
    const UNetConfig& c = model.config();
    nlohmann::json size = nlohmann::json::array();
    for (int64_t s : parse_size(o->model.size)) size.push_back(s);
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    nlohmann::json j{
        {"tool", "unet.cu"},
        {"mode", o->device.precision},
        {"cuda_graph_replays", be.graph_replays()},
        {"device", be.name()},
        {"threads", omp_get_max_threads()},
        {"blas_core", blas_core().running},
        {"config",
         {{"dims", c.dims}, {"size", size}, {"start_filters", c.start_filters}, {"depth", c.depth},
          {"norm", o->model.norm}, {"batch", input.n}}},
        {"parameters", n},
        {"versions", {{"unet", UNET_VERSION}}},
        {"inference", {{"ms_per_batch", infer_s * 1e3}, {"images_per_s", double(input.n) / infer_s}}},
        {"train",
         {{"ms_per_step", train_s * 1e3},
          {"images_per_s", double(input.n) / train_s},
          {"tflop_per_step", flops / 1e12},
          {"tflops", tflops},
          {"skipped_steps", skipped},
          {"mfu", o->peak_tflops > 0 ? nlohmann::json(tflops / o->peak_tflops) : nlohmann::json()}}},
        {"arena_mib", double(model.arena_bytes()) / (1 << 20)},
        {"peak_rss_mib", double(usage.ru_maxrss) / 1024}};
    if (be.is_cuda()) j["peak_device_mib"] = double(be.peak_bytes()) / (1 << 20);
    if (!be.is_cuda()) {
      j["conv_kernels"] = ops::cpu_conv_kernels(be);
      j["versions"]["onednn"] = onednn_version();
    }
    if (!o->save_weights.empty()) save_weights(o->save_weights, model, {{"unet.patch", o->model.size}});
    std::printf("%s\n", j.dump().c_str());
  });
}

}  // namespace unet
