#include "kernels/crop.h"

#include <gtest/gtest.h>

#include "tests/gradcheck.h"

namespace unet {
namespace {

using test::random_vector;

struct Case {
  Shape big, small;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.big.str() << " -> " << c.small.str(); }

class CropGrad : public ::testing::TestWithParam<Case> {};

TEST_P(CropGrad, MatchesFiniteDifferences) {
  const auto [big, small] = GetParam();
  auto x = random_vector(big.count(), 1);
  const auto r = random_vector(small.count(), 2);
  std::vector<float> y(small.count()), dx(big.count(), 4.f);
  auto forward = [&] { crop_forward(Tensor(x.data(), big), Tensor(y.data(), small)); };
  forward();
  crop_backward(Tensor(const_cast<float*>(r.data()), small), Tensor(dx.data(), big), GradMode::overwrite);
  test::expect_gradients([&] { forward(); return test::dot(r, y.data()); }, {{"x", &x, &dx, nullptr}});
}

INSTANTIATE_TEST_SUITE_P(Shapes, CropGrad,
                         ::testing::Values(Case{shape2d(2, 3, 8, 8), shape2d(2, 3, 4, 4)},
                                           Case{shape2d(1, 2, 7, 9), shape2d(1, 2, 4, 5)},
                                           Case{shape2d(1, 1, 5, 5), shape2d(1, 1, 5, 5)},
                                           Case{shape3d(2, 2, 6, 5, 8), shape3d(2, 2, 2, 3, 4)}));

TEST(Crop, TakesTheCentre) {
  std::vector<float> x(16);
  for (int i = 0; i < 16; ++i) x[i] = float(i);
  std::vector<float> y(4);
  crop_forward(Tensor(x.data(), shape2d(1, 1, 4, 4)), Tensor(y.data(), shape2d(1, 1, 2, 2)));
  EXPECT_EQ(y, (std::vector<float>{5, 6, 9, 10}));
  std::vector<float> dx(16, 1.f);
  crop_backward(Tensor(y.data(), shape2d(1, 1, 2, 2)), Tensor(dx.data(), shape2d(1, 1, 4, 4)), GradMode::accumulate);
  EXPECT_EQ(dx[5], 6.f);
  EXPECT_EQ(dx[0], 1.f);
}

// A "valid" U-Net level: the encoder output is cropped into the skip half of the
// decoder's concatenation buffer, the up path's half is left alone.
TEST(Crop, IntoTheSkipHalfOfAConcatenation) {
  const Shape enc = shape2d(2, 3, 10, 10), cat = shape2d(2, 5, 6, 6);
  auto x = random_vector(enc.count(), 1);
  std::vector<float> buf(cat.count(), -3.f);
  const Tensor skip = Tensor(buf.data(), cat).channels(0, 3);
  crop_forward(Tensor(x.data(), enc), skip);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 5; ++c)
      for (int64_t y = 0; y < 6; ++y)
        for (int64_t xx = 0; xx < 6; ++xx) {
          const float got = buf[((n * 5 + c) * 6 + y) * 6 + xx];
          if (c >= 3) EXPECT_EQ(got, -3.f);
          else EXPECT_EQ(got, x[((n * 3 + c) * 10 + y + 2) * 10 + xx + 2]);
        }
}

TEST(Crop, LargerOutputIsAClearError) {
  std::vector<float> a(16), b(36);
  EXPECT_THROW(crop_forward(Tensor(a.data(), shape2d(1, 1, 4, 4)), Tensor(b.data(), shape2d(1, 1, 6, 6))),
               std::invalid_argument);
}

}  // namespace
}  // namespace unet
