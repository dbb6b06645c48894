// The training step on its scalars in the backend's memory (TrainStep,
// kernels/step.h): bit for bit what the ops called one by one with host
// scalars compute (loss, gradient accumulation, clipping, loss scaling, frozen
// parameters, Adam); the parameters and moments stay when the gradient is not
// finite, a label is out of range or the epoch runs out; and when the step is
// one CUDA Graph. The same
// run on a GPU is test_model_gpu's.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "engine/train/train_step.h"
#include "tests/gradcheck.h"

namespace unet {
namespace {

using test::labels_for;
using test::random_vector;
using ::testing::HasSubstr;

UNetConfig small(float dropout = 0.f) {
  UNetConfig c;
  c.dims = 2;
  c.depth = 2;
  c.start_filters = 4;
  c.norm = NormChoice::batch;
  c.classes = 3;
  c.head = default_head(3);
  c.in_channels = 2;
  c.dropout = dropout;
  c.seed = 9;
  return c;
}

const Shape kInput = shape2d(2, 2, 16, 16);

StepSettings dice_ce(int accumulate = 1) {
  StepSettings s;
  s.loss = make_loss(LossKind::dice_ce, Head::softmax);
  s.accumulate = accumulate;
  return s;
}

struct Data {
  std::vector<float> x;
  std::vector<int32_t> labels;
};

Data batch(const UNet& m, uint64_t seed) {
  return {random_vector(kInput.count(), seed), labels_for(m.output_shape(), m.config().classes, seed + 100)};
}

std::vector<float> params_of(UNet& m) {
  m.copy_to_host();
  return std::vector<float>(m.params(), m.params() + m.parameter_count());
}

// A source of staged batches for run(): `count` of them, then none.
TrainStep::NextBatch batches(UNet& m, const std::vector<Data>& data, size_t& used) {
  return [&m, &data, &used]() -> std::optional<StagedBatch> {
    if (used == data.size()) return std::nullopt;
    const Data& d = data[used++];
    const Tensor input = m.stage_input(d.x.data());
    return StagedBatch{input, m.stage_labels(d.labels.data())};
  };
}

TEST(StepFactor, ClipsAveragesAndUnscales) {
  StepInputs in;
  in.accumulate = 2;
  in.loss_scale = 4;
  StepOutputs out;
  out.sumsq = 16;  // the summed, scaled gradient's norm 4: the mean unscaled one 4 / 2 / 4
  EXPECT_DOUBLE_EQ(step_norm(out.sumsq, in), 0.5);
  EXPECT_EQ(step_factor(out, in), 1.f / 2 / 4) << "no clipping";
  in.clip_norm = 0.25;
  EXPECT_EQ(step_factor(out, in), clip_scale(0.5, 0.25) / 2 / 4);
  EXPECT_NEAR(step_factor(out, in) * std::sqrt(out.sumsq), 0.25, 1e-6) << "the step's gradient has the bound's norm";
  StepOutputs bad = out;
  bad.loss = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(step_factor(bad, in), 0.f) << "a loss that is not finite";
  bad = out;
  bad.sumsq = std::numeric_limits<double>::infinity();
  EXPECT_EQ(step_factor(bad, in), 0.f) << "a gradient that overflowed";
  bad = out;
  bad.first_bad = 3;
  EXPECT_EQ(step_factor(bad, in), 0.f) << "a label outside the classes";
}

// Three steps of two accumulated batches, Adam, clipping that bites, a loss
// scale and a frozen first tensor, against the ops one by one.
TEST(TrainStep, MatchesTheOpsOneByOne) {
  UNet a(small()), b(small());
  a.plan(kInput);
  b.plan(kInput);
  const int64_t n = a.parameter_count(), frozen = a.param_table()[0].count;
  StepSettings s = dice_ce(2);
  s.clip_norm = 0.05;
  s.ranges = {{frozen, n - frozen}};
  TrainStep step(a, s);
  const float scale = 8, lr = 1e-2f;
  std::vector<float> m(n, 0.f), v(n, 0.f);
  LossSpec scaled = s.loss;
  scaled.grad_scale = scale;
  for (int64_t k = 0; k < 3; ++k) {
    const std::vector<Data> data{batch(a, 10 * k + 1), batch(a, 10 * k + 2)};
    size_t used = 0;
    const std::optional<StepResult> r = step.run(k, lr, scale, batches(a, data, used));
    ASSERT_TRUE(r && r->taken);

    b.zero_grads();
    double loss = 0;
    for (const Data& d : data) {
      const Tensor input(const_cast<float*>(d.x.data()), kInput);
      loss += loss_forward_backward(b.forward(input, true, k), d.labels.data(), b.dlogits(), scaled) / 2;
      b.backward(input);
    }
    const double norm = gradient_norm(b.grads(), n) / 2 / scale;
    ASSERT_LT(0.05, norm) << "the clipping bites";
    optimizer_step(b.params() + frozen, b.grads() + frozen, m.data() + frozen, v.data() + frozen, n - frozen,
                   s.optimizer, lr, k + 1, clip_scale(norm, s.clip_norm) / 2.f / scale);
    EXPECT_EQ(r->loss, loss) << "step " << k;
    EXPECT_EQ(r->grad_norm, norm) << "step " << k;
  }
  EXPECT_EQ(params_of(a), params_of(b));
  EXPECT_EQ(std::vector<float>(step.m(), step.m() + n), m);
  EXPECT_EQ(std::vector<float>(step.v(), step.v() + n), v);
}

// A NaN in the input: ReLU turns it into zeros in the forward pass, but the
// gradient is not finite.
TEST(TrainStep, KeepsTheParametersWhenTheGradientIsNotFinite) {
  UNet model(small());
  model.plan(kInput);
  TrainStep step(model, dice_ce());
  Data d = batch(model, 1);
  d.x[5] = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> before = params_of(model);
  size_t used = 0;
  const std::optional<StepResult> r = step.run(0, 1e-2f, 1.f, batches(model, {d}, used));
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->taken);
  EXPECT_FALSE(std::isfinite(r->grad_norm));
  EXPECT_EQ(params_of(model), before);
  for (int64_t i = 0; i < model.parameter_count(); ++i) ASSERT_EQ(step.m()[i], 0.f) << "moment " << i;
}

TEST(TrainStep, ALabelOutsideTheClassesThrowsAndKeepsTheParameters) {
  UNet model(small());
  model.plan(kInput);
  TrainStep step(model, dice_ce());
  Data d = batch(model, 1);
  d.labels[17] = 7;
  const std::vector<float> before = params_of(model);
  size_t used = 0;
  try {
    step.run(0, 1e-2f, 1.f, batches(model, {d}, used));
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("label 7 at voxel 17 is outside classes 0..2"));
  }
  EXPECT_EQ(params_of(model), before);
}

TEST(TrainStep, LeavesAStepTheEpochRunsOutOf) {
  UNet model(small());
  model.plan(kInput);
  TrainStep step(model, dice_ce(2));
  const std::vector<float> before = params_of(model);
  size_t used = 0;
  EXPECT_FALSE(step.run(0, 1e-2f, 1.f, batches(model, {batch(model, 1)}, used)).has_value());
  EXPECT_EQ(used, 1u);
  EXPECT_EQ(params_of(model), before);
}

// The next step's first batch staged while a step runs: on a backend with
// separate memory (every batch copied into the two staging buffers in turn, as
// on a GPU) the same steps as fetching each batch when its step starts.
TEST(TrainStep, FetchingAheadTrainsAsFetchingInTurn) {
  std::vector<float> params[2];
  for (int ahead = 0; ahead < 2; ++ahead) {
    UNet model(small());
    model.to(cpu_backend(0, true));
    model.plan(kInput);
    TrainStep step(model, dice_ce(2));
    std::vector<Data> data;
    for (uint64_t k = 0; k < 6; ++k) data.push_back(batch(model, 30 + k));
    size_t used = 0;
    const TrainStep::NextBatch next = batches(model, data, used);
    for (int64_t k = 0; k < 3; ++k) {
      ASSERT_TRUE(step.run(k, 1e-2f, 1.f, next, ahead == 1 && k < 2).has_value());
      EXPECT_EQ(used, size_t(2 * k + 2 + (ahead == 1 && k < 2 ? 1 : 0))) << "batches fetched after step " << k;
    }
    params[ahead] = params_of(model);
  }
  EXPECT_EQ(params[0], params[1]);
}

// One graph per step where nothing in it calls the host or changes from step
// to step (its inputs aside).
TEST(TrainStep, IsOneGraphWhereNothingInItCallsTheHost) {
  UNet plain(small()), dropout(small(0.2f));
  EXPECT_TRUE(TrainStep(plain, dice_ce()).whole());
  EXPECT_FALSE(TrainStep(dropout, dice_ce()).whole()) << "dropout's masks follow the step";
  EXPECT_FALSE(TrainStep(plain, dice_ce(2)).whole()) << "each batch is staged between passes";
  StepSettings ranks = dice_ce();
  ranks.reduce_sums = [](std::vector<double>&) {};
  EXPECT_FALSE(TrainStep(plain, ranks).whole()) << "the loss's sums go over the ranks on the host";
}

}  // namespace
}  // namespace unet
