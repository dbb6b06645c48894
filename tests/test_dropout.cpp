#include "kernels/dropout.h"

#include <gtest/gtest.h>

#include "tests/gradcheck.h"

namespace unet {
namespace {

using test::random_vector;

class DropoutGrad : public ::testing::TestWithParam<Shape> {};

TEST_P(DropoutGrad, MatchesFiniteDifferences) {
  const Shape s = GetParam();
  const DropoutSpec spec{0.3f, 11, 5};
  auto x = random_vector(s.count(), 1);
  const auto r = random_vector(s.count(), 2);
  std::vector<float> y(x.size()), dx(r);
  auto forward = [&] { dropout_forward(Tensor(x.data(), s), Tensor(y.data(), s), spec); };
  dropout_backward(Tensor(dx.data(), s), Tensor(dx.data(), s), spec);  // in place
  test::expect_gradients([&] { forward(); return test::dot(r, y.data()); }, {{"x", &x, &dx, nullptr}});
}

INSTANTIATE_TEST_SUITE_P(Shapes, DropoutGrad,
                         ::testing::Values(shape2d(2, 3, 5, 7), shape3d(2, 2, 3, 4, 5), shape3d(1, 1, 7, 3, 5)));

TEST(Dropout, KeepsTheExpectedFractionScaled) {
  const Shape s = shape2d(4, 8, 64, 64);
  std::vector<float> x(s.count(), 1.f), y(x.size());
  const DropoutSpec spec{0.25f, 3, 0};
  dropout_forward(Tensor(x.data(), s), Tensor(y.data(), s), spec);
  int64_t kept = 0;
  for (float v : y) {
    ASSERT_TRUE(v == 0.f || v == 1.f / 0.75f) << v;
    kept += v != 0.f;
  }
  EXPECT_NEAR(double(kept) / double(s.count()), 0.75, 0.01);
}

TEST(Dropout, SameSeedAndOffsetSameMaskOtherOffsetOther) {
  const Shape s = shape3d(2, 2, 4, 8, 8);
  std::vector<float> x(s.count(), 1.f), a(x.size()), b(x.size()), c(x.size());
  dropout_forward(Tensor(x.data(), s), Tensor(a.data(), s), {0.5f, 9, 1});
  dropout_forward(Tensor(x.data(), s), Tensor(b.data(), s), {0.5f, 9, 1});
  dropout_forward(Tensor(x.data(), s), Tensor(c.data(), s), {0.5f, 9, 2});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

// The mask depends on the element's logical index, not on where the view lives.
TEST(Dropout, ChannelSliceViewDrawsTheMaskOfItsOwnShape) {
  const Shape slice = shape2d(2, 3, 5, 5), full = shape2d(2, 5, 5, 5);
  std::vector<float> x(slice.count(), 2.f), packed(x.size()), buf(full.count(), -7.f);
  const DropoutSpec spec{0.4f, 1, 2};
  dropout_forward(Tensor(x.data(), slice), Tensor(packed.data(), slice), spec);
  std::vector<float> xbuf(full.count(), 2.f);
  dropout_forward(Tensor(xbuf.data(), full).channels(1, 3), Tensor(buf.data(), full).channels(1, 3), spec);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 5; ++c)
      for (int64_t i = 0; i < 25; ++i) {
        const float got = buf[(n * 5 + c) * 25 + i];
        if (c >= 1 && c <= 3)
          EXPECT_EQ(got, packed[(n * 3 + c - 1) * 25 + i]);
        else
          EXPECT_EQ(got, -7.f);
      }
}

TEST(Dropout, RejectsRateOutsideRange) {
  std::vector<float> x(4);
  const Tensor t(x.data(), shape2d(1, 1, 2, 2));
  EXPECT_THROW(dropout_forward(t, t, {1.f, 0, 0}), std::invalid_argument);
  EXPECT_THROW(dropout_forward(t, t, {-0.1f, 0, 0}), std::invalid_argument);
}

}  // namespace
}  // namespace unet
