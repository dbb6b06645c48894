// The whole U-Net on the GPU against the CPU, through the same call list: one
// training step (loss, logits, every parameter's gradient, the running
// statistics) for 2D and 3D nets with each norm, "valid" padding and dropout,
// every parameter moved off its initial value;
// ten steps of SGD with momentum; whole steps replayed as CUDA Graphs bit for
// bit equal to eager launches; a bad label reported after a step that kept
// the parameters; each precision; a batch too large for the device; and the
// binary's train, predict and bench with --gpus 1. Skips, saying so, where no
// GPU is present.
//
// Tolerances, relative to the largest magnitude of each compared tensor: FP32
// 1e-3 (every convolution sums in another order than the CPU's GEMMs, and a
// step goes through a dozen of them and their norms); TF32 5e-2 (10-bit
// mantissas in the convolutions); ten SGD steps 1e-3 of the weights.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/device/device_buffer.h"
#include "tests/gpu/gpu_test.h"
#include "engine/train/loss_scaler.h"
#include "engine/train/train_step.h"
#include "engine/model/unet_model.h"
#include "io/png.h"
#include "io/data/synthetic.h"
#include "tests/gradcheck.h"
#include "tests/run_binary.h"

namespace unet {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using test::labels_for;
using test::random_vector;

class GpuModel : public ::testing::Test {
 protected:
  void SetUp() override {
    UNET_GPU_OR_SKIP("the U-Net on the GPU");
  }
};

struct Net {
  const char* name;
  UNetConfig config;
  Shape input;
  LossKind loss;
};

UNetConfig net(int dims, int depth, NormChoice norm, int classes, Padding padding, float dropout, Activation act) {
  UNetConfig c;
  c.dims = dims;
  c.depth = depth;
  c.start_filters = 8;
  c.norm = norm;
  c.classes = classes;
  c.head = default_head(classes);
  c.padding = padding;
  c.dropout = dropout;
  c.activation = {act, 0.01f};
  c.in_channels = 2;
  c.seed = 11;
  return c;
}

// Thick slices: the first two levels pool 2x2x1, as nnU-Net plans them.
UNetConfig anisotropic(UNetConfig c) {
  c.pooling = {{1, 2, 2}, {1, 2, 2}, {2, 2, 2}};
  return c;
}

UNetConfig supervised(UNetConfig c) {
  c.deep_supervision = true;
  return c;
}

std::vector<Net> nets() {
  return {
      // The CLI's default layout: no norm, "same": the encoders' last convolutions
      // write straight into their channel slice of the concatenation buffers.
      {"2d_none_softmax", net(2, 3, NormChoice::none, 3, Padding::same, 0.f, Activation::relu), shape2d(2, 2, 32, 32),
       LossKind::dice_ce},
      {"2d_batch_softmax", net(2, 3, NormChoice::batch, 3, Padding::same, 0.f, Activation::relu), shape2d(2, 2, 32, 48),
       LossKind::dice_ce},
      {"2d_valid_dropout_sigmoid", net(2, 2, NormChoice::none, 2, Padding::valid, 0.2f, Activation::leaky_relu),
       shape2d(2, 2, 44, 44), LossKind::bce},
      {"3d_instance_softmax", net(3, 2, NormChoice::instance, 3, Padding::same, 0.f, Activation::relu),
       shape3d(2, 2, 16, 16, 24), LossKind::dice_ce},
      {"3d_anisotropic_instance", anisotropic(net(3, 3, NormChoice::instance, 2, Padding::same, 0.f,
                                                  Activation::leaky_relu)),
       shape3d(2, 2, 4, 16, 24), LossKind::dice_ce},
      // Deep supervision: heads on decoder levels 1 and 2 and their losses in the step.
      {"2d_deep_supervision_softmax", supervised(net(2, 4, NormChoice::instance, 3, Padding::same, 0.f,
                                                     Activation::leaky_relu)),
       shape2d(2, 2, 32, 48), LossKind::dice_ce},
  };
}

struct Outcome {
  double loss = 0;
  std::vector<float> logits, grads, state;
};

// A step that leaves the parameters (SGD at learning rate 0), to compare what it computed.
std::unique_ptr<TrainStep> frozen_step(UNet& m, const LossSpec& spec) {
  StepSettings s;
  s.loss = spec;
  s.optimizer.kind = OptimizerKind::sgd;
  return std::make_unique<TrainStep>(m, s);
}

Outcome train_step(UNet& m, TrainStep& step, const std::vector<float>& x, const std::vector<int32_t>& labels,
                   float loss_scale, int64_t number, float lr = 0.f) {
  Outcome r;
  const Tensor in = m.stage_input(x.data());
  const StagedBatch batch{in, m.stage_labels(labels.data())};
  r.loss = step.run(number, lr, loss_scale, [&] { return std::optional<StagedBatch>(batch); })->loss;
  const Tensor host = m.logits_on_host();
  r.logits.assign(host.data, host.data + host.shape.count());
  m.copy_grads_to_host();
  m.copy_to_host();
  r.grads.assign(m.grads(), m.grads() + m.parameter_count());
  r.state = m.state();
  return r;
}

double max_abs(const float* a, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, double(std::fabs(a[i])));
  return m;
}

// max |a - b| <= tol x max |a| over [offset, offset + count), named on failure.
void expect_close(const std::vector<float>& a, const std::vector<float>& b, int64_t offset, int64_t count, double tol,
                  const std::string& what) {
  const double scale = std::max(max_abs(a.data() + offset, count), 1e-6);
  double worst = 0;
  for (int64_t i = offset; i < offset + count; ++i) worst = std::max(worst, double(std::fabs(a[i] - b[i])));
  EXPECT_LE(worst, tol * scale) << what << ": max difference " << worst << " against magnitude " << scale;
}

// The loss scale the GPU's loss gradient gets (fp16's fixed one, under which
// the 16-bit weight gradients stay finite); its parameter gradients are divided
// by it before comparing.
float loss_scale(Precision p) { return p == Precision::fp16 ? kFixedFp16Scale : 1.f; }

// The same offsets added to every parameter of both nets: at initialization
// every bias is 0 and every norm's gamma and beta are 1 and 0, where a GPU that
// ignored a bias or a norm parameter would still agree with the CPU.
void perturb(UNet& a, UNet& b, uint64_t seed) {
  const auto d = random_vector(a.parameter_count(), seed, -0.2f, 0.2f);
  for (int64_t i = 0; i < a.parameter_count(); ++i) a.params()[i] += d[i], b.params()[i] += d[i];
}

void expect_step_matches(const Net& n, Precision precision, double tol) {
  UNet cpu(n.config), gpu(n.config);
  perturb(cpu, gpu, 5);
  gpu.to(cuda_backend(0, precision));
  cpu.plan(n.input);
  gpu.plan(n.input);
  const auto x = random_vector(n.input.count(), 3);
  const auto labels = labels_for(cpu.output_shape(), n.config.classes, 4);
  const LossSpec spec = make_loss(n.loss, n.config.head);
  const float scale = loss_scale(precision);
  const Outcome a = train_step(cpu, *frozen_step(cpu, spec), x, labels, 1.f, 6);
  Outcome b = train_step(gpu, *frozen_step(gpu, spec), x, labels, scale, 6);
  for (float& g : b.grads) g /= scale;
  EXPECT_NEAR(a.loss, b.loss, tol * std::fabs(a.loss)) << n.name;
  expect_close(a.logits, b.logits, 0, int64_t(a.logits.size()), tol, std::string(n.name) + " logits");
  for (const ParamInfo& p : cpu.param_table())
    expect_close(a.grads, b.grads, p.offset, p.count, tol, std::string(n.name) + " gradient of " + p.name);
  if (!a.state.empty()) expect_close(a.state, b.state, 0, int64_t(a.state.size()), tol, std::string(n.name) + " state");

  // A second backward without zeroing: every parameter gradient adds up (the
  // ops accumulate into them) on both.
  std::vector<float> twice[2];
  int i = 0;
  for (UNet* m : {&cpu, &gpu}) {
    m->backward(m->stage_input(x.data()));
    m->copy_grads_to_host();
    twice[i++].assign(m->grads(), m->grads() + m->parameter_count());
  }
  for (float& g : twice[1]) g /= scale;
  for (const ParamInfo& p : cpu.param_table())
    expect_close(twice[0], twice[1], p.offset, p.count, tol, std::string(n.name) + " accumulated gradient of " + p.name);
  for (int64_t k = 0; k < cpu.parameter_count(); ++k)
    ASSERT_NEAR(twice[1][k], 2 * b.grads[k], 1e-5 * (1 + std::fabs(b.grads[k]))) << n.name << " parameter " << k;

  // Inference: running statistics, no dropout.
  std::vector<float> infer[2];
  i = 0;
  for (UNet* m : {&cpu, &gpu}) {
    m->forward(m->stage_input(x.data()), false);
    const Tensor t = m->logits_on_host();
    infer[i++].assign(t.data, t.data + t.shape.count());
  }
  expect_close(infer[0], infer[1], 0, int64_t(infer[0].size()), tol, std::string(n.name) + " inference logits");
}

TEST_F(GpuModel, TrainingStepMatchesCpuFp32) {
  for (const Net& n : nets()) expect_step_matches(n, Precision::fp32, 1e-3);
}

TEST_F(GpuModel, TrainingStepMatchesCpuTf32) {
  for (const Net& n : nets()) expect_step_matches(n, Precision::tf32, 5e-2);
}

// Mixed precision: 16-bit activations (8 significant bits in bf16, 11 in fp16)
// through a dozen layers; sums and parameters in fp32.
TEST_F(GpuModel, TrainingStepMatchesCpuBf16) {
  for (const Net& n : nets()) expect_step_matches(n, Precision::bf16, 1e-1);
}

TEST_F(GpuModel, TrainingStepMatchesCpuFp16) {
  for (const Net& n : nets()) expect_step_matches(n, Precision::fp16, 3e-2);
}

// Training steps replayed as CUDA Graphs (one per step) and inference passes
// (one per pass) compute what the same ops launched one by one do, bit for bit,
// over several steps (batches alternate between two staging buffers, a graph
// each: steps 1 and 2 run eagerly, 3 and 4 capture, 5 and 6 replay); two
// models agreeing exactly is also the proof that a GPU step repeats
// (deterministic algorithms, fixed-order reductions).
TEST_F(GpuModel, CapturedStepsMatchEagerOnes) {
  for (const Net& n : nets()) {
    if (n.config.dropout > 0.f) continue;  // dropout's masks follow the step: not captured
    UNet graphs(n.config), eager(n.config);
    graphs.to(cuda_backend(0, Precision::fp32, true));
    eager.to(cuda_backend(0, Precision::fp32, false));
    StepSettings settings;
    settings.loss = make_loss(n.loss, n.config.head);
    settings.clip_norm = 0.5;
    TrainStep graph_step(graphs, settings), eager_step(eager, settings);
    ASSERT_TRUE(graph_step.whole()) << n.name;
    for (int plan = 0; plan < 2; ++plan) {  // planning again drops the graphs: they are captured anew
      graphs.plan(n.input);
      eager.plan(n.input);
      for (int64_t step = 0; step < 6; ++step) {
        const auto x = random_vector(n.input.count(), 40 + step);
        const auto labels = labels_for(graphs.output_shape(), n.config.classes, 50 + step);
        const std::string at = std::string(n.name) + " plan " + std::to_string(plan) + " step " + std::to_string(step);
        // A learning rate and a loss scale that change from step to step: the graph reads them.
        double loss[2];
        int i = 0;
        for (auto [m, ts] : {std::pair{&graphs, &graph_step}, std::pair{&eager, &eager_step}}) {
          const Tensor in = m->stage_input(x.data());
          const StagedBatch batch{in, m->stage_labels(labels.data())};
          const auto r = ts->run(plan * 6 + step, 1e-3f * float(step + 1), float(1 << step),
                                 [&] { return std::optional<StagedBatch>(batch); });
          ASSERT_TRUE(r && r->taken) << at;
          loss[i++] = r->loss;
        }
        EXPECT_EQ(loss[0], loss[1]) << at;
        const Tensor la = graphs.logits_on_host();
        const std::vector<float> logits(la.data, la.data + la.shape.count());
        const Tensor lb = eager.logits_on_host();
        EXPECT_EQ(logits, std::vector<float>(lb.data, lb.data + lb.shape.count())) << at;
        graphs.copy_to_host();
        eager.copy_to_host();
        EXPECT_TRUE(std::equal(graphs.params(), graphs.params() + graphs.parameter_count(), eager.params())) << at;
        EXPECT_EQ(graphs.state(), eager.state()) << at << " (running statistics)";
      }
      for (int k = 0; k < 4; ++k) {  // inference: per staging buffer, eager, then captured
        const auto x = random_vector(n.input.count(), 60 + k);
        std::vector<float> logits[2];
        int i = 0;
        for (UNet* m : {&graphs, &eager}) {
          m->forward(m->stage_input(x.data()), false);
          const Tensor t = m->logits_on_host();
          logits[i++].assign(t.data, t.data + t.shape.count());
        }
        EXPECT_EQ(logits[0], logits[1]) << n.name << " inference " << k;
      }
    }
    // Per plan: per staging buffer, a step captured then replayed (2 x 2), and
    // an inference pass captured (2).
    EXPECT_EQ(graphs.backend().graph_replays(), 2 * (4 + 2)) << n.name << ": graphs launched";
    EXPECT_EQ(eager.backend().graph_replays(), 0) << n.name;
  }
}

void expect_ten_sgd_steps_match(Precision precision, double tol) {
  const Net n = nets()[0];
  UNet cpu(n.config), gpu(n.config);
  perturb(cpu, gpu, 6);
  gpu.to(cuda_backend(0, precision));
  cpu.plan(n.input);
  gpu.plan(n.input);
  StepSettings settings;
  settings.loss = make_loss(n.loss, n.config.head);
  settings.optimizer.kind = OptimizerKind::sgd;
  TrainStep cpu_step(cpu, settings), gpu_step(gpu, settings);
  const int64_t count = cpu.parameter_count();
  for (int step = 0; step < 10; ++step) {
    const auto x = random_vector(n.input.count(), 100 + step);
    const auto labels = labels_for(cpu.output_shape(), n.config.classes, 200 + step);
    const Outcome a = train_step(cpu, cpu_step, x, labels, 1.f, step, 1e-2f);
    const Outcome b = train_step(gpu, gpu_step, x, labels, loss_scale(precision), step, 1e-2f);
    EXPECT_NEAR(a.loss, b.loss, tol * std::fabs(a.loss)) << dtype_name(storage_type(precision)) << " step " << step;
  }
  gpu.copy_to_host();
  const std::vector<float> a(cpu.params(), cpu.params() + count), b(gpu.params(), gpu.params() + count);
  for (const ParamInfo& p : cpu.param_table()) expect_close(a, b, p.offset, p.count, tol, "after 10 steps: " + p.name);
  expect_close(cpu.state(), gpu.state(), 0, int64_t(cpu.state().size()), tol, "running statistics after 10 steps");
}

TEST_F(GpuModel, TenSgdStepsMatchCpu) { expect_ten_sgd_steps_match(Precision::fp32, 1e-3); }
TEST_F(GpuModel, TenSgdStepsMatchCpuBf16) { expect_ten_sgd_steps_match(Precision::bf16, 5e-2); }
TEST_F(GpuModel, TenSgdStepsMatchCpuFp16) { expect_ten_sgd_steps_match(Precision::fp16, 1e-2); }

// The device records the label (nothing waits for the host in a step); the
// step then is not taken, and the host reports it as the CPU does.
TEST_F(GpuModel, ALabelOutsideTheClassesKeepsTheParametersAndIsReported) {
  const Net n = nets()[0];
  UNet gpu(n.config);
  gpu.to(cuda_backend(0, Precision::fp32));
  gpu.plan(n.input);
  StepSettings settings;
  settings.loss = make_loss(n.loss, n.config.head);
  TrainStep step(gpu, settings);
  const auto x = random_vector(n.input.count(), 1);
  auto labels = labels_for(gpu.output_shape(), n.config.classes, 2);
  labels[123] = 9;
  gpu.copy_to_host();
  const std::vector<float> before(gpu.params(), gpu.params() + gpu.parameter_count());
  try {
    train_step(gpu, step, x, labels, 1.f, 0, 1e-2f);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("label 9 at voxel 123 is outside classes 0..2"));
  }
  gpu.copy_to_host();
  EXPECT_TRUE(std::equal(before.begin(), before.end(), gpu.params()));
}

TEST_F(GpuModel, BatchTooLargeNamesTheBatchThatFits) {
  UNetConfig c = net(2, 4, NormChoice::batch, 2, Padding::same, 0.f, Activation::relu);
  c.start_filters = 64;
  c.in_channels = 1;
  UNet model(c);
  model.to(cuda_backend(0, Precision::fp32));
  try {
    model.plan(shape2d(4096, 1, 1024, 1024));
    FAIL() << "a 4096 x 1024 x 1024 batch planned";
  } catch (const OutOfMemory& e) {
    const std::string what = e.what();
    // 4096 x 128 channels x 1024^2 passes cuDNN's 2^31 elements before it passes the memory.
    EXPECT_THAT(what, HasSubstr("a batch of 4096 makes a tensor of"));
    EXPECT_THAT(what, HasSubstr("cuda:0"));
    const size_t at = what.find("largest batch that fits is ");
    ASSERT_NE(at, std::string::npos) << what;
    const int fits = std::stoi(what.substr(at + 27));
    ASSERT_GT(fits, 0) << what;
    EXPECT_NO_THROW(model.plan(shape2d(fits, 1, 1024, 1024))) << what;
  }
}

// The binary: a default run trains on the GPU, predicts what the CPU predicts
// from the same weights, and `unet bench` reports the GPU.
TEST_F(GpuModel, BinaryTrainsPredictsAndBenchesOnTheGpu) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("unet_gpu_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "image");
  const test::Result t = test::run_unet("train --gpus 1 --run-dir '" + (dir / "run").string() + "'");
  ASSERT_EQ(t.status, 0) << t.out;
  EXPECT_THAT(t.out, HasSubstr("on cuda:0"));
  const size_t at = t.out.rfind("mean foreground Dice ");
  ASSERT_NE(at, std::string::npos) << t.out;
  EXPECT_GT(std::stod(t.out.substr(at + 21)), 0.9) << t.out;

  SyntheticSpec spec;
  spec.size = 128;
  const auto [image, label] = synthetic_em(spec, 99);
  write_png((dir / "image" / "0.png").string(), image);
  for (int gpus : {0, 1}) {
    const test::Result p = test::run_unet("predict --gpus " + std::to_string(gpus) + " -w '" +
                                          (dir / "run" / "best.safetensors").string() + "' '" +
                                          (dir / "image").string() + "' -o '" + (dir / ("pred" + std::to_string(gpus))).string() + "'");
    ASSERT_EQ(p.status, 0) << p.out;
  }
  const Volume a = read_png((dir / "pred0" / "0_mask.png").string()), b = read_png((dir / "pred1" / "0_mask.png").string());
  ASSERT_EQ(a.voxels.size(), b.voxels.size());
  int64_t differ = 0;
  for (size_t i = 0; i < a.voxels.size(); ++i) differ += a.voxels[i] != b.voxels[i];
  EXPECT_LE(differ, int64_t(a.voxels.size() / 1000)) << "pixels where the GPU's mask differs from the CPU's";

  for (const char* precision : {"fp32", "tf32", "bf16", "fp16"}) {
    const test::Result bench =
        test::run_unet(std::string("bench --gpus 1 --size 256x256 --batch-size 2 --steps 3 --precision ") + precision);
    ASSERT_EQ(bench.status, 0) << bench.out;
    const nlohmann::json j = nlohmann::json::parse(bench.out.substr(bench.out.find('{')));
    EXPECT_THAT(j["device"].get<std::string>(), HasSubstr("cuda:0"));
    EXPECT_EQ(j["mode"], precision);
    EXPECT_GT(j["train"]["images_per_s"].get<double>(), 0);
    EXPECT_GT(j["peak_device_mib"].get<double>(), 0);
  }
  // Mixed precision through the trainer: fp16 with loss scaling learns the default task.
  const test::Result h = test::run_unet("train --gpus 1 --precision fp16 --run-dir '" + (dir / "fp16").string() + "'");
  ASSERT_EQ(h.status, 0) << h.out;
  const size_t at16 = h.out.rfind("mean foreground Dice ");
  ASSERT_NE(at16, std::string::npos) << h.out;
  EXPECT_GT(std::stod(h.out.substr(at16 + 21)), 0.85) << h.out;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace unet
