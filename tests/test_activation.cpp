#include "kernels/activation.h"

#include <gtest/gtest.h>

#include "tests/gradcheck.h"

namespace unet {
namespace {

using test::GradInput;
using test::random_vector;

struct Case {
  Shape shape;
  Activation kind;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.shape.str() << " activation " << int(c.kind); }

class ActivationGrad : public ::testing::TestWithParam<Case> {};

TEST_P(ActivationGrad, MatchesFiniteDifferences) {
  const auto [s, kind] = GetParam();
  const ActivationSpec act{kind, 0.1f};
  auto x = random_vector(s.count(), 1);
  auto bias = random_vector(s.c, 2, -0.3f, 0.3f);
  const auto r = random_vector(s.count(), 3);
  std::vector<float> y(x.size());
  // A bias perturbation moves a whole channel: keep every pre-activation clear of
  // the kink at 0 by more than the step, and skip (near_kink) none in practice.
  const double window = 2e-2;
  for (int64_t i = 0; i < s.count(); ++i) {
    const float pre = x[i] + bias[(i / s.spatial()) % s.c];
    if (std::fabs(pre) < window) x[i] += pre < 0 ? -2 * window : 2 * window;
  }

  auto forward = [&] {
    y = x;
    bias_act_forward(Tensor(y.data(), s), bias.data(), act);
  };
  forward();
  std::vector<float> dx = r, dbias(bias.size(), 0.f);
  bias_act_backward(Tensor(y.data(), s), Tensor(dx.data(), s), dbias.data(), act);

  auto near_kink = [&](int64_t i) {
    const int64_t c = (i / s.spatial()) % s.c;
    return kind != Activation::identity && std::fabs(x[i] + bias[c]) < window;
  };
  test::expect_gradients([&] { forward(); return test::dot(r, y.data()); },
                         {{"x", &x, &dx, near_kink}, {"bias", &bias, &dbias, nullptr}});
}

INSTANTIATE_TEST_SUITE_P(Shapes, ActivationGrad,
                         ::testing::Values(Case{shape2d(2, 3, 5, 7), Activation::relu},
                                           Case{shape2d(1, 1, 4, 4), Activation::leaky_relu},
                                           Case{shape3d(2, 2, 3, 4, 5), Activation::relu},
                                           Case{shape3d(1, 3, 3, 3, 3), Activation::leaky_relu},
                                           Case{shape2d(3, 2, 3, 3), Activation::identity}));

TEST(Activation, HandValues) {
  std::vector<float> y{-2.f, -0.5f, 0.f, 1.5f};
  bias_act_forward(Tensor(y.data(), shape2d(1, 1, 1, 4)), nullptr, {Activation::leaky_relu, 0.1f});
  EXPECT_FLOAT_EQ(y[0], -0.2f);
  EXPECT_FLOAT_EQ(y[1], -0.05f);
  EXPECT_FLOAT_EQ(y[2], 0.f);
  EXPECT_FLOAT_EQ(y[3], 1.5f);
  std::vector<float> z{-1.f, 2.f};
  const float b = 0.5f;
  bias_act_forward(Tensor(z.data(), shape2d(1, 1, 1, 2)), &b, {Activation::relu, 0.f});
  EXPECT_FLOAT_EQ(z[0], 0.f);
  EXPECT_FLOAT_EQ(z[1], 2.5f);
}

// A view of a channel slice (batch stride > its own sample size) touches only its slice.
TEST(Activation, ChannelSliceViewLeavesOtherChannels) {
  const Shape full = shape2d(2, 4, 3, 3);
  std::vector<float> buf(full.count(), -1.f);
  Tensor slice = Tensor(buf.data(), full).channels(1, 2);
  const float bias[2] = {3.f, 3.f};
  bias_act_forward(slice, bias, {Activation::relu, 0.f});
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 4; ++c)
      for (int64_t i = 0; i < 9; ++i)
        EXPECT_FLOAT_EQ(buf[(n * 4 + c) * 9 + i], (c == 1 || c == 2) ? 2.f : -1.f);
}

}  // namespace
}  // namespace unet
