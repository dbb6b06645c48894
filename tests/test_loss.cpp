#include "kernels/loss.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "tests/gradcheck.h"

namespace unet {
namespace {

using test::random_vector;

struct Case {
  const char* name;
  LossKind kind;
  Head head;
  Shape shape;
  bool background = true;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name << " " << c.shape.str(); }

std::vector<int32_t> random_labels(int64_t count, int classes, int32_t ignore, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> g(static_cast<size_t>(count));
  for (auto& v : g) v = (rng() % 10 == 0) ? ignore : static_cast<int32_t>(rng() % uint64_t(classes));
  return g;
}

class LossGrad : public ::testing::TestWithParam<Case> {};

// The objective is voxels x loss, so that per-logit gradients are of order one
// and the checker's tolerance means something.
TEST_P(LossGrad, MatchesFiniteDifferences) {
  const Case c = GetParam();
  const Shape& s = c.shape;
  const int classes = c.head == Head::sigmoid ? 2 : int(s.c);
  std::vector<float> weights(classes);
  for (int k = 0; k < classes; ++k) weights[k] = 0.5f + k;
  LossSpec spec = make_loss(c.kind, c.head, 0.7f, 0.75f, c.kind == LossKind::weighted_ce ? weights : std::vector<float>{});
  spec.include_background = c.background;
  spec.ignore_label = 7;
  const auto labels = random_labels(s.n * s.spatial(), classes, 7, 3);
  auto z = random_vector(s.count(), 1, -2.f, 2.f);
  std::vector<float> dz(z.size()), scratch(z.size());
  const double k = double(s.n * s.spatial());
  loss_forward_backward(Tensor(z.data(), s), labels.data(), Tensor(dz.data(), s), spec);
  for (float& g : dz) g = static_cast<float>(g * k);
  test::expect_gradients(
      [&] { return k * loss_forward_backward(Tensor(z.data(), s), labels.data(), Tensor(scratch.data(), s), spec); },
      {{"logits", &z, &dz, nullptr}});
  for (int64_t v = 0; v < s.n * s.spatial(); ++v) {
    if (labels[v] != 7) continue;
    for (int64_t ch = 0; ch < s.c; ++ch)
      ASSERT_EQ(dz[(v / s.spatial()) * s.sample() + ch * s.spatial() + v % s.spatial()], 0.f) << "ignored voxel " << v;
  }
}

const Shape k2dSig = shape2d(2, 1, 5, 7), k3dSig = shape3d(2, 1, 3, 4, 5);
const Shape k2dSoft = shape2d(2, 3, 5, 7), k3dSoft = shape3d(2, 3, 3, 4, 5);

INSTANTIATE_TEST_SUITE_P(
    Losses, LossGrad,
    ::testing::Values(Case{"bce", LossKind::bce, Head::sigmoid, k2dSig}, Case{"bce", LossKind::bce, Head::sigmoid, k3dSig},
                      Case{"wbce", LossKind::weighted_ce, Head::sigmoid, k2dSig},
                      Case{"ce", LossKind::ce, Head::softmax, k2dSoft}, Case{"ce", LossKind::ce, Head::softmax, k3dSoft},
                      Case{"wce", LossKind::weighted_ce, Head::softmax, k2dSoft},
                      Case{"wce", LossKind::weighted_ce, Head::softmax, k3dSoft},
                      Case{"dice", LossKind::dice, Head::sigmoid, k2dSig}, Case{"dice", LossKind::dice, Head::softmax, k3dSoft},
                      Case{"dice-nobg", LossKind::dice, Head::softmax, k2dSoft, false},
                      Case{"jaccard", LossKind::jaccard, Head::sigmoid, k3dSig},
                      Case{"jaccard", LossKind::jaccard, Head::softmax, k2dSoft},
                      Case{"tversky", LossKind::tversky, Head::sigmoid, k2dSig},
                      Case{"tversky", LossKind::tversky, Head::softmax, k3dSoft},
                      Case{"focal", LossKind::focal_tversky, Head::sigmoid, k3dSig},
                      Case{"focal", LossKind::focal_tversky, Head::softmax, k2dSoft},
                      Case{"dice_ce", LossKind::dice_ce, Head::sigmoid, k2dSig},
                      Case{"dice_ce", LossKind::dice_ce, Head::softmax, k3dSoft},
                      Case{"dice_ce4", LossKind::dice_ce, Head::softmax, shape2d(3, 4, 3, 5)}));

double loss_of(const LossSpec& spec, std::vector<float> z, std::vector<int32_t> g, Shape s) {
  std::vector<float> dz(z.size());
  return loss_forward_backward(Tensor(z.data(), s), g.data(), Tensor(dz.data(), s), spec);
}

// Hand values from the published formulas on tiny inputs. Sigmoid logits 0 give p = 1/2.
TEST(LossHand, BinaryCrossEntropy) {
  // mean(-log sigmoid(0), -log(1 - sigmoid(2))) = (log 2 + softplus(2)) / 2
  const double want = (std::log(2.0) + std::log1p(std::exp(2.0))) / 2;
  EXPECT_NEAR(loss_of(make_loss(LossKind::bce, Head::sigmoid), {0.f, 2.f}, {1, 0}, shape2d(1, 1, 1, 2)), want, 1e-6);
}

TEST(LossHand, SoftmaxCrossEntropyAndClassWeights) {
  // Logits (0, log 3): p(1) = 3/4.
  const float l3 = std::log(3.f);
  EXPECT_NEAR(loss_of(make_loss(LossKind::ce, Head::softmax), {0.f, l3}, {1}, shape2d(1, 2, 1, 1)), -std::log(0.75), 1e-6);
  // Two voxels, labels 0 and 1, weights (1, 3): (1 * -log p0(v0) + 3 * -log p1(v1)) / 4.
  const std::vector<float> z{0.f, 0.f, l3, 0.f};  // channel 0 plane, then channel 1 plane
  const double want = (1 * -std::log(0.25) + 3 * -std::log(0.5)) / 4;
  EXPECT_NEAR(loss_of(make_loss(LossKind::weighted_ce, Head::softmax, 0.7f, 0.75f, {1.f, 3.f}), z, {0, 1},
                      shape2d(1, 2, 1, 2)),
              want, 1e-6);
}

// p = (1/2, 1/2, 1/2), g = (1, 1, 0): TP = 1, SP = 1.5, SG = 2, FP = 0.5, FN = 1, smooth 1.
TEST(LossHand, RegionLosses) {
  const std::vector<float> z{0.f, 0.f, 0.f};
  const std::vector<int32_t> g{1, 1, 0};
  const Shape s = shape2d(1, 1, 1, 3);
  // Tversky index with alpha = beta = 0.5: (TP + s) / (TP + .5 FP + .5 FN + s)
  EXPECT_NEAR(loss_of(make_loss(LossKind::dice, Head::sigmoid), z, g, s), 1 - 2.0 / 2.75, 1e-6);
  EXPECT_NEAR(loss_of(make_loss(LossKind::jaccard, Head::sigmoid), z, g, s), 1 - 2.0 / 3.5, 1e-6);
  EXPECT_NEAR(loss_of(make_loss(LossKind::tversky, Head::sigmoid, 0.7f), z, g, s), 1 - 2.0 / 2.85, 1e-6);
  EXPECT_NEAR(loss_of(make_loss(LossKind::focal_tversky, Head::sigmoid, 0.7f, 0.75f), z, g, s),
              std::pow(1 - 2.0 / 2.85, 0.75), 1e-6);
  const double bce = 3 * std::log(2.0) / 3;
  EXPECT_NEAR(loss_of(make_loss(LossKind::dice_ce, Head::sigmoid), z, g, s), bce + 1 - 2.0 / 2.75, 1e-6);
}

TEST(LossHand, SoftmaxDiceWithAndWithoutBackground) {
  // Two classes, logits 0: p = 1/2 everywhere; labels (1, 1, 0).
  const std::vector<float> z(6, 0.f);
  const std::vector<int32_t> g{1, 1, 0};
  const Shape s = shape2d(1, 2, 1, 3);
  LossSpec spec = make_loss(LossKind::dice, Head::softmax);
  // class 1: TP 1, FP .5, FN 1 -> TI 2/2.75; class 0: TP .5, FP 1, FN .5 -> TI 1.5/2.25
  EXPECT_NEAR(loss_of(spec, z, g, s), ((1 - 2.0 / 2.75) + (1 - 1.5 / 2.25)) / 2, 1e-6);
  spec.include_background = false;
  EXPECT_NEAR(loss_of(spec, z, g, s), 1 - 2.0 / 2.75, 1e-6);
}

TEST(Loss, IgnoredVoxelsContributeNothing) {
  LossSpec spec = make_loss(LossKind::dice_ce, Head::softmax);
  spec.ignore_label = 255;
  const Shape s3 = shape2d(1, 2, 1, 3), s2 = shape2d(1, 2, 1, 2);
  const double with = loss_of(spec, {0.3f, -1.f, 5.f, 2.f, 0.5f, -4.f}, {0, 1, 255}, s3);
  const double without = loss_of(spec, {0.3f, -1.f, 2.f, 0.5f}, {0, 1}, s2);
  EXPECT_NEAR(with, without, 1e-7);
}

// Mixed precision's loss scale multiplies the gradient exactly (a power of
// two), for every head and loss kind, and leaves the loss as it is.
TEST(Loss, GradScaleMultipliesTheGradientExactly) {
  for (auto [kind, head] : {std::pair{LossKind::dice_ce, Head::softmax}, std::pair{LossKind::focal_tversky, Head::softmax},
                            std::pair{LossKind::bce, Head::sigmoid}, std::pair{LossKind::dice, Head::sigmoid}}) {
    const Shape s = shape2d(2, head == Head::sigmoid ? 1 : 3, 5, 7);
    const std::vector<float> z = test::random_vector(s.count(), 9);
    const std::vector<int32_t> g = test::labels_for(s, head == Head::sigmoid ? 2 : 3, 10);
    LossSpec spec = make_loss(kind, head);
    std::vector<float> d1(z.size()), d2(z.size());
    const double l1 = loss_forward_backward(Tensor(const_cast<float*>(z.data()), s), g.data(), Tensor(d1.data(), s), spec);
    spec.grad_scale = 65536.f;
    const double l2 = loss_forward_backward(Tensor(const_cast<float*>(z.data()), s), g.data(), Tensor(d2.data(), s), spec);
    EXPECT_EQ(l1, l2);
    for (size_t i = 0; i < z.size(); ++i) ASSERT_EQ(d2[i], 65536.f * d1[i]) << i;
  }
}

TEST(Loss, PerfectPredictionHasNearZeroDice) {
  const Shape s = shape2d(1, 2, 1, 4);
  std::vector<float> z{20, 20, -20, -20, -20, -20, 20, 20};
  EXPECT_LT(loss_of(make_loss(LossKind::dice, Head::softmax), z, {0, 0, 1, 1}, s), 1e-6);
}

TEST(Loss, LabelOutsideClassesIsAnError) {
  try {
    loss_of(make_loss(LossKind::ce, Head::softmax), {0, 0, 0, 0}, {0, 2}, shape2d(1, 2, 1, 2));
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("label 2 at voxel 1"));
  }
}

TEST(Loss, MismatchedHeadAndLossAreErrors) {
  EXPECT_THROW(make_loss(LossKind::bce, Head::softmax), std::invalid_argument);
  EXPECT_THROW(make_loss(LossKind::ce, Head::sigmoid), std::invalid_argument);
  EXPECT_THROW(make_loss(LossKind::weighted_ce, Head::softmax), std::invalid_argument);
  EXPECT_THROW(loss_of(make_loss(LossKind::ce, Head::softmax), {0}, {0}, shape2d(1, 1, 1, 1)), std::invalid_argument);
}

}  // namespace
}  // namespace unet
