#include "kernels/norm.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/gradcheck.h"

namespace unet {
namespace {

using test::random_vector;

struct Case {
  Shape shape;
  NormKind kind;
};
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.shape.str() << (c.kind == NormKind::batch ? " batch" : " instance");
}

class NormGrad : public ::testing::TestWithParam<Case> {};

TEST_P(NormGrad, MatchesFiniteDifferences) {
  const auto [s, kind] = GetParam();
  const NormSpec spec{kind, 1e-5f, 0.1f};
  const int64_t groups = norm_groups(kind, s);
  auto x = random_vector(s.count(), 1, -2.f, 2.f);
  auto gamma = random_vector(s.c, 2, 0.5f, 1.5f), beta = random_vector(s.c, 3);
  const auto r = random_vector(s.count(), 4);
  std::vector<float> y(x.size()), mean(groups), invstd(groups);
  auto forward = [&] {
    std::vector<float> rm(s.c, 0.f), rv(s.c, 1.f);
    norm_forward_train(Tensor(x.data(), s), Tensor(y.data(), s), gamma.data(), beta.data(), mean.data(),
                       invstd.data(), rm.data(), rv.data(), spec);
  };
  forward();
  std::vector<float> dx(x.size()), dgamma(s.c, 0.f), dbeta(s.c, 0.f), dy(r);
  norm_backward(Tensor(x.data(), s), Tensor(dy.data(), s), Tensor(dx.data(), s), gamma.data(), mean.data(),
                invstd.data(), dgamma.data(), dbeta.data(), spec);
  test::GradCheckOptions opt;
  opt.step = 3e-3;
  test::expect_gradients([&] { forward(); return test::dot(r, y.data()); },
                         {{"x", &x, &dx, nullptr}, {"gamma", &gamma, &dgamma, nullptr}, {"beta", &beta, &dbeta, nullptr}},
                         opt);
}

INSTANTIATE_TEST_SUITE_P(Shapes, NormGrad,
                         ::testing::Values(Case{shape2d(2, 3, 5, 7), NormKind::batch},
                                           Case{shape2d(3, 2, 4, 5), NormKind::instance},
                                           Case{shape3d(2, 2, 3, 4, 5), NormKind::batch},
                                           Case{shape3d(2, 3, 3, 3, 5), NormKind::instance},
                                           Case{shape2d(1, 4, 6, 6), NormKind::batch}));

// x = {1, 2, 3, 4} in one channel, batch of 2 x 2 elements: mean 2.5, biased
// variance 1.25, unbiased 5/3.
TEST(Norm, BatchStatisticsAndRunningUpdateByHand) {
  const Shape s = shape2d(2, 1, 1, 2);
  std::vector<float> x{1, 2, 3, 4}, y(4);
  const float gamma = 2.f, beta = 0.5f;
  float mean, invstd, rm = 1.f, rv = 1.f;
  norm_forward_train(Tensor(x.data(), s), Tensor(y.data(), s), &gamma, &beta, &mean, &invstd, &rm, &rv,
                     {NormKind::batch, 0.f, 0.1f});
  EXPECT_FLOAT_EQ(mean, 2.5f);
  EXPECT_FLOAT_EQ(invstd, static_cast<float>(1 / std::sqrt(1.25)));
  EXPECT_FLOAT_EQ(y[0], static_cast<float>(2 * (1 - 2.5) / std::sqrt(1.25) + 0.5));
  EXPECT_FLOAT_EQ(rm, 0.9f * 1.f + 0.1f * 2.5f);
  EXPECT_FLOAT_EQ(rv, static_cast<float>(0.9 + 0.1 * 5.0 / 3.0));
}

TEST(Norm, InferenceUsesRunningStatistics) {
  const Shape s = shape2d(1, 2, 1, 2);
  std::vector<float> x{1, 3, 5, 7}, y(4);
  const float gamma[2] = {1, 2}, beta[2] = {0, 1}, rm[2] = {1, 5}, rv[2] = {4, 1};
  norm_forward_infer(Tensor(x.data(), s), Tensor(y.data(), s), gamma, beta, rm, rv, {NormKind::batch, 0.f, 0.1f});
  EXPECT_FLOAT_EQ(y[0], 0.f);
  EXPECT_FLOAT_EQ(y[1], 1.f);
  EXPECT_FLOAT_EQ(y[2], 1.f);
  EXPECT_FLOAT_EQ(y[3], 5.f);
}

// Instance norm normalizes each (sample, channel) by its own statistics in both modes.
TEST(Norm, InstanceInferenceEqualsTraining) {
  const Shape s = shape3d(2, 3, 2, 3, 4);
  const auto x = random_vector(s.count(), 5);
  const auto gamma = random_vector(s.c, 6), beta = random_vector(s.c, 7);
  std::vector<float> a(x.size()), b(x.size()), mean(6), invstd(6);
  std::vector<float> xs(x);
  norm_forward_train(Tensor(xs.data(), s), Tensor(a.data(), s), gamma.data(), beta.data(), mean.data(),
                     invstd.data(), nullptr, nullptr, {NormKind::instance, 1e-5f, 0.1f});
  norm_forward_infer(Tensor(xs.data(), s), Tensor(b.data(), s), gamma.data(), beta.data(), nullptr, nullptr,
                     {NormKind::instance, 1e-5f, 0.1f});
  EXPECT_EQ(a, b);
  // Each instance of the output has mean beta[c].
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c) {
      double m = 0;
      for (int64_t i = 0; i < s.spatial(); ++i) m += a[(n * 3 + c) * s.spatial() + i];
      EXPECT_NEAR(m / double(s.spatial()), beta[c], 1e-5);
    }
}

}  // namespace
}  // namespace unet
