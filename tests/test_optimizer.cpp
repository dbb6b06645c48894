#include "kernels/optimizer.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "engine/train/schedule.h"
#include "tests/gradcheck.h"

namespace unet {
namespace {

// Two steps on one parameter p = 1 with gradients g1, g2, lr 0.1, weight decay
// 0.01. The expected values follow torch.optim's formulas, worked out in double:
// SGD:      g += wd p; buf = mu buf + g; p -= lr buf            (Nesterov: lr (g + mu buf))
// Adam:     g += wd p; m, v moments; p -= lr m^ / (sqrt(v^) + eps)
// AdamW:    p -= lr wd p; then Adam without the decay in g.
struct Case {
  OptimizerKind kind;
  bool nesterov;
  float g1, g2;
  double after1, after2;
};

class OptimizerHand : public ::testing::TestWithParam<Case> {};

TEST_P(OptimizerHand, TwoStepsMatchPublishedFormulas) {
  const Case c = GetParam();
  OptimizerSpec spec;
  spec.kind = c.kind;
  spec.nesterov = c.nesterov;
  spec.weight_decay = 0.01f;
  float p = 1.f, m = 0.f, v = 0.f;
  optimizer_step(&p, &c.g1, &m, &v, 1, spec, 0.1f, 1, 1.f);
  EXPECT_NEAR(p, c.after1, 1e-6);
  optimizer_step(&p, &c.g2, &m, &v, 1, spec, 0.1f, 2, 1.f);
  EXPECT_NEAR(p, c.after2, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Kinds, OptimizerHand,
                         ::testing::Values(Case{OptimizerKind::sgd, false, 0.5f, 0.5f, 0.949, 0.852151},
                                           Case{OptimizerKind::sgd, true, 0.5f, 0.5f, 0.9031, 0.76507411},
                                           Case{OptimizerKind::adam, false, 0.5f, -0.25f, 0.9000000019607842,
                                                0.8712293476231742},
                                           Case{OptimizerKind::adamw, false, 0.5f, -0.25f, 0.8990000019999999,
                                                0.8714672987058462}));

// grad_scale multiplies the gradient before anything else: scale 0.5 on g equals g / 2.
TEST(Optimizer, GradScaleFoldsIntoTheGradient) {
  OptimizerSpec spec;
  spec.kind = OptimizerKind::sgd;
  const std::vector<float> g = test::random_vector(10000, 1), half = [&] {
    std::vector<float> h(g);
    for (float& x : h) x *= 0.5f;
    return h;
  }();
  std::vector<float> p1(g.size(), 1.f), p2(p1), m1(g.size(), 0.f), m2(m1), v(g.size(), 0.f);
  optimizer_step(p1.data(), g.data(), m1.data(), v.data(), int64_t(g.size()), spec, 0.01f, 1, 0.5f);
  optimizer_step(p2.data(), half.data(), m2.data(), v.data(), int64_t(g.size()), spec, 0.01f, 1, 1.f);
  EXPECT_EQ(p1, p2);
  EXPECT_EQ(m1, m2);
}

TEST(Optimizer, RejectsStepZero) {
  float p = 0, g = 0, m = 0, v = 0;
  EXPECT_THROW(optimizer_step(&p, &g, &m, &v, 1, OptimizerSpec{}, 0.1f, 0, 1.f), std::invalid_argument);
}

TEST(GradientNorm, HandValueAndClipping) {
  const std::vector<float> g{3.f, 4.f};
  EXPECT_DOUBLE_EQ(gradient_norm(g.data(), 2), 5.0);
  EXPECT_FLOAT_EQ(clip_scale(5.0, 1.0), static_cast<float>(1.0 / (5.0 + 1e-6)));
  EXPECT_FLOAT_EQ(clip_scale(5.0, 10.0), 1.f);
  EXPECT_FLOAT_EQ(clip_scale(5.0, 0.0), 1.f);
}

TEST(GradientNorm, BitIdenticalAcrossThreadCounts) {
  const std::vector<float> g = test::random_vector(1 << 20, 7);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = gradient_norm(g.data(), int64_t(g.size()));
  omp_set_num_threads(std::max(2, saved));
  const double many = gradient_norm(g.data(), int64_t(g.size()));
  omp_set_num_threads(saved);
  EXPECT_EQ(one, many);
}

TEST(Schedule, WarmupThenEachKind) {
  ScheduleSpec s;
  s.base_lr = 1.0;
  s.total_steps = 110;
  s.warmup_steps = 10;
  EXPECT_DOUBLE_EQ(learning_rate(s, 0), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(s, 9), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(s, 50), 1.0);  // constant
  s.kind = ScheduleKind::step;
  s.step_size = 30;
  s.step_gamma = 0.5;
  EXPECT_DOUBLE_EQ(learning_rate(s, 10 + 29), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(s, 10 + 30), 0.5);
  EXPECT_DOUBLE_EQ(learning_rate(s, 10 + 95), 0.125);
  s.kind = ScheduleKind::poly;
  EXPECT_NEAR(learning_rate(s, 10 + 50), std::pow(0.5, 0.9), 1e-12);
  EXPECT_DOUBLE_EQ(learning_rate(s, 10 + 100), 0.0);
  s.kind = ScheduleKind::cosine;
  s.min_lr = 0.1;
  EXPECT_DOUBLE_EQ(learning_rate(s, 10), 1.0);
  EXPECT_NEAR(learning_rate(s, 10 + 50), 0.55, 1e-12);
  EXPECT_NEAR(learning_rate(s, 10 + 100), 0.1, 1e-12);
  EXPECT_NEAR(learning_rate(s, 500), 0.1, 1e-12);  // past the end: the last rate
}

TEST(Schedule, RejectsInvalidSpecs) {
  ScheduleSpec s;
  s.total_steps = 10;
  s.warmup_steps = 10;
  EXPECT_THROW(learning_rate(s, 0), std::invalid_argument);
  s.warmup_steps = 0;
  s.base_lr = 0;
  EXPECT_THROW(learning_rate(s, 0), std::invalid_argument);
  s.base_lr = 1e-3;
  EXPECT_THROW(learning_rate(s, -1), std::invalid_argument);
}

}  // namespace
}  // namespace unet
