#include "engine/train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>

#include "engine/storage/checkpoint.h"
#include "io/data/synthetic.h"

namespace unet {
namespace {

namespace fs = std::filesystem;

// Synthetic EM cases in memory, z-scored by hand; patches 32x32 cut at
// positions keyed on (epoch, sample) like the real pipeline.
struct Data {
  std::vector<Sample> cases;
  TrainData train;
};

Data make_data(int cases, int64_t size, int batch, bool with_validation) {
  Data d;
  SyntheticSpec spec;
  spec.size = size;
  spec.cells = 12;
  spec.seed = 3;
  for (int i = 0; i < cases; ++i) {
    auto [image, label] = synthetic_em(spec, i);
    Sample s;
    s.h = s.w = size;
    s.image.resize(image.voxels.size());
    for (size_t k = 0; k < image.voxels.size(); ++k) s.image[k] = (image.voxels[k] - 128.f) / 64.f;
    for (float v : label.voxels) s.label.push_back(v > 127.5f ? 1 : 0);
    d.cases.push_back(std::move(s));
  }
  const std::vector<Sample>* pool = &d.cases;
  d.train.batch = shape2d(batch, 1, 32, 32);
  d.train.samples_per_epoch = cases;
  d.train.make_sample = [pool](int64_t epoch, int64_t sample, float* image, int32_t* label) {
    std::mt19937_64 rng = sample_rng(7, epoch, sample);
    PatchSpec p;
    p.size = {1, 32, 32};
    const Sample patch = extract_patch((*pool)[sample % pool->size()], p, rng);
    write_to(patch, shape2d(1, 1, 32, 32), image, label);
  };
  if (with_validation) d.train.validation = {d.cases.back()};
  return d;
}

UNetConfig small_net() {
  UNetConfig c;
  c.depth = 2;
  c.start_filters = 4;
  c.norm = NormChoice::batch;
  c.dropout = 0.1f;
  c.seed = 1;
  return c;
}

TrainOptions options(const std::string& dir, int64_t steps) {
  TrainOptions o;
  o.steps = steps;
  o.loss = make_loss(LossKind::dice_ce, Head::sigmoid);
  o.schedule.kind = ScheduleKind::poly;
  o.schedule.base_lr = 3e-3;
  o.clip_norm = 5;
  o.val_every = 4;
  o.run_dir = dir;
  o.workers = 2;
  o.seed = 5;
  return o;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::path(::testing::TempDir()) / ("unet_train_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  return d;
}

TEST(Trainer, LearnsSyntheticMembranes) {
  Data d = make_data(8, 64, 4, true);
  UNet model(small_net());
  const fs::path dir = fresh_dir("learn");
  TrainOptions o = options(dir.string(), 40);
  o.val_every = 20;
  const TrainResult r = train(model, d.train, o, nullptr);
  ASSERT_EQ(r.status, TrainResult::Status::finished);
  ASSERT_EQ(r.validations.size(), 2u);
  EXPECT_GT(r.validations.back().mean_foreground_dice, 0.6) << "membrane Dice after 40 steps";
  EXPECT_TRUE(fs::exists(dir / "best.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "checkpoints" / "latest" / "state.safetensors"));
  std::ifstream log(dir / "metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(log, line);) ++lines;
  EXPECT_EQ(lines, 40 + 2);
}

// Trains `o` stopped after step 1 and resumed by a fresh model (a fresh
// process: everything comes from the run folder), each on the backend that
// `backend` makes; returns the resumed model.
std::unique_ptr<UNet> stop_and_resume(const Data& d, const TrainOptions& o,
                                      const std::function<std::shared_ptr<Backend>()>& backend) {
  // The loop looks at the flag after each step: raised before the run, it stops
  // after step 1, mid-epoch (two steps an epoch), with a checkpoint written.
  std::atomic<bool> stop{true};
  UNet first(small_net());
  first.to(backend());
  const TrainResult r1 = train(first, d.train, o, &stop);
  EXPECT_EQ(r1.status, TrainResult::Status::preempted);
  EXPECT_EQ(r1.steps, 1);
  stop = false;
  auto resumed = std::make_unique<UNet>(small_net());
  resumed->to(backend());
  const TrainResult r2 = train(*resumed, d.train, o, &stop);
  EXPECT_EQ(r2.status, TrainResult::Status::finished);
  EXPECT_EQ(r2.steps, o.steps);
  return resumed;
}

// Stopped after step 1 of 12 (as SIGTERM would), then resumed: the same weights,
// bit for bit, as 12 steps without a stop. Two batches per step exercise
// accumulation, and the stop falls mid-epoch.
TEST(Trainer, ResumeIsBitIdentical) {
  Data d = make_data(10, 48, 2, false);
  TrainOptions straight = options(fresh_dir("straight").string(), 12);
  straight.accumulate = 2;
  UNet a(small_net());
  train(a, d.train, straight, nullptr);

  TrainOptions stopped = straight;
  stopped.run_dir = fresh_dir("stopped").string();
  const auto c = stop_and_resume(d, stopped, [] { return cpu_backend(); });
  EXPECT_TRUE(std::equal(a.params(), a.params() + a.parameter_count(), c->params()));
  EXPECT_EQ(a.state(), c->state());
}

// The trainer on a backend whose memory is apart from the host's, as a GPU's:
// stopped after step 1 and resumed by a fresh model, it writes the weights,
// validation scores and best model of the run on host memory, bit for bit. A
// missing upload or download on the GPU path (weights, optimizer moments,
// batches, logits for validation) would show here.
TEST(Trainer, SeparateMemoryTrainsAsHostMemory) {
  Data d = make_data(10, 48, 2, true);
  TrainOptions host = options(fresh_dir("host").string(), 12);
  host.accumulate = 2;
  UNet a(small_net());
  train(a, d.train, host, nullptr);

  TrainOptions apart = host;
  apart.run_dir = fresh_dir("apart").string();
  stop_and_resume(d, apart, [] { return cpu_backend(0, true); });
  for (const char* f : {"checkpoints/latest/weights.safetensors", "checkpoints/latest/state.safetensors",
                        "best.safetensors"}) {
    const Safetensors x = read_safetensors((fs::path(host.run_dir) / f).string());
    const Safetensors y = read_safetensors((fs::path(apart.run_dir) / f).string());
    ASSERT_EQ(x.tensors.size(), y.tensors.size()) << f;
    for (size_t i = 0; i < x.tensors.size(); ++i)
      EXPECT_EQ(x.tensors[i].values, y.tensors[i].values) << f << ": " << x.tensors[i].name;
  }
  auto scores = [](const std::string& dir) {
    std::vector<std::string> out;
    std::ifstream log(fs::path(dir) / "metrics.jsonl");
    for (std::string line; std::getline(log, line);)
      if (line.find("val_dice") != std::string::npos) out.push_back(line);
    return out;
  };
  EXPECT_EQ(scores(host.run_dir), scores(apart.run_dir));
  EXPECT_FALSE(scores(host.run_dir).empty());
}

TEST(LossScaler, HalvesOnOverflowAndDoublesAfterTheInterval) {
  LossScaling spec;
  spec.dynamic = true;
  spec.initial = 1024.f;
  spec.interval = 3;
  LossScaler s(spec);
  EXPECT_EQ(s.scale(), 1024.f);
  EXPECT_FALSE(s.update(false));  // overflow: skip, halve
  EXPECT_EQ(s.scale(), 512.f);
  EXPECT_TRUE(s.update(true));
  EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 512.f);
  EXPECT_TRUE(s.update(true));  // the third finite step in a row
  EXPECT_EQ(s.scale(), 1024.f);
  EXPECT_TRUE(s.update(true));
  EXPECT_FALSE(s.update(false));  // an overflow restarts the count
  EXPECT_TRUE(s.update(true));
  EXPECT_TRUE(s.update(true));
  EXPECT_EQ(s.scale(), 512.f);

  LossScaler off{LossScaling{}};  // bf16, fp32: scale 1, nothing skipped
  EXPECT_EQ(off.scale(), 1.f);
  EXPECT_TRUE(off.update(true));
  EXPECT_FALSE(off.update(false));
  EXPECT_EQ(off.scale(), 1.f);

  spec.initial = 1.f;
  LossScaler floor(spec);
  EXPECT_THROW(floor.update(false), std::runtime_error);  // overflow even unscaled: says to use bf16
  spec.initial = 1000.f;
  EXPECT_THROW(LossScaler{spec}, std::invalid_argument);  // not a power of two: unscaling would round
}

// Loss scaling in the trainer (fp16's, run here on the CPU's fp32): a scale
// that never overflows changes nothing, bit for bit (powers of two scale and
// unscale exactly); one that overflows fp32 skips those steps, halving, until
// the gradients are finite, and training then goes on; the scale survives a
// stop and resume.
TEST(Trainer, LossScalingIsExactAndSkipsOverflowingSteps) {
  Data d = make_data(10, 48, 2, false);
  TrainOptions plain = options(fresh_dir("unscaled").string(), 8);
  UNet a(small_net());
  train(a, d.train, plain, nullptr);

  TrainOptions scaled = plain;
  scaled.run_dir = fresh_dir("scaled").string();
  scaled.loss_scaling = {true, 1024.f, 3};
  UNet b(small_net());
  const TrainResult rb = train(b, d.train, scaled, nullptr);
  EXPECT_EQ(rb.skipped_steps, 0);
  EXPECT_TRUE(std::equal(a.params(), a.params() + a.parameter_count(), b.params()));

  // Gradients made large (a heavy cross-entropy weight) times the largest
  // power of two in fp32 overflow it: the first steps are skipped.
  TrainOptions huge = plain;
  huge.run_dir = fresh_dir("overflow").string();
  huge.loss.ce_weight = 1e4f;
  huge.steps = 12;
  huge.loss_scaling = {true, 0x1p127f, 2000};
  UNet c(small_net());
  const TrainResult rc = train(c, d.train, huge, nullptr);
  EXPECT_GE(rc.skipped_steps, 1);
  EXPECT_LT(rc.skipped_steps, 12);
  EXPECT_TRUE(std::isfinite(rc.last_loss));
  std::ifstream log(fs::path(huge.run_dir) / "metrics.jsonl");
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(log, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 12u);
  EXPECT_EQ(lines[0]["skipped"], true);
  EXPECT_EQ(lines[0]["loss_scale"], 0x1p127f);
  EXPECT_TRUE(lines[0]["grad_norm"].is_null());
  EXPECT_EQ(lines[1]["loss_scale"], 0x1p126f);
  EXPECT_EQ(lines.back()["skipped"], false);
  EXPECT_TRUE(lines.back()["grad_norm"].is_number());

  // Stopped after step 1 and resumed: the scale and its count come back.
  TrainOptions resumed = scaled;
  resumed.run_dir = fresh_dir("scaled_resumed").string();
  const auto r = stop_and_resume(d, resumed, [] { return cpu_backend(); });
  EXPECT_TRUE(std::equal(b.params(), b.params() + b.parameter_count(), r->params()));
  const Safetensors st = read_safetensors((fs::path(resumed.run_dir) / "checkpoints" / "latest" / "state.safetensors").string());
  // Doubled after steps 3 and 6, two finite steps since: a count restarted at
  // the resume would say 1 (doublings after steps 4 and 7).
  EXPECT_EQ(st.metadata.at("loss_scale"), "4096.0");
  EXPECT_EQ(st.metadata.at("good_steps"), "2");
}

TEST(Trainer, AnotherArchitectureInTheRunFolderIsAnError) {
  Data d = make_data(4, 32, 2, false);
  const std::string dir = fresh_dir("other").string();
  UNet a(small_net());
  train(a, d.train, options(dir, 2), nullptr);
  UNetConfig bigger = small_net();
  bigger.start_filters = 8;
  UNet b(bigger);
  try {
    train(b, d.train, options(dir, 4), nullptr);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("checkpoint of another model"), std::string::npos) << e.what();
  }
}

TEST(Trainer, FrozenParametersDoNotMove) {
  Data d = make_data(4, 32, 2, false);
  UNet model(small_net());
  std::vector<float> before(model.params(), model.params() + model.parameter_count());
  TrainOptions o = options(fresh_dir("frozen").string(), 3);
  o.freeze = {"enc"};
  o.optimizer.weight_decay = 0.1f;
  train(model, d.train, o, nullptr);
  for (const ParamInfo& p : model.param_table()) {
    const bool same = std::equal(before.begin() + p.offset, before.begin() + p.offset + p.count, model.params() + p.offset);
    EXPECT_EQ(same, p.name.compare(0, 3, "enc") == 0) << p.name;
  }
}

}  // namespace
}  // namespace unet
