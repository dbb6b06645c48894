#include "kernels/maxpool.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/gradcheck.h"

namespace unet {
namespace {

using test::random_vector;

class MaxPoolGrad : public ::testing::TestWithParam<Shape> {};

TEST_P(MaxPoolGrad, MatchesFiniteDifferences) {
  const Shape in = GetParam();
  const Shape out = maxpool_output_shape(in);
  auto x = random_vector(in.count(), 1);
  const auto r = random_vector(out.count(), 2);
  std::vector<float> y(out.count());
  std::vector<uint8_t> arg(out.count());
  auto forward = [&] { maxpool_forward(Tensor(x.data(), in), Tensor(y.data(), out), arg.data()); };
  forward();
  std::vector<float> dx(in.count(), 5.f);
  maxpool_backward(Tensor(const_cast<float*>(r.data()), out), arg.data(), Tensor(dx.data(), in), GradMode::overwrite);

  // Kink: an element within 2 steps of another element of its window (a near
  // tie) may change the winner when perturbed.
  const double window = 2 * 2e-2;
  const int64_t zs = in.dims == 3 ? 2 : 1;
  auto near_kink = [&](int64_t i) {
    const int64_t xx = i % in.w, yy = (i / in.w) % in.h, z = (i / (in.w * in.h)) % in.d;
    const int64_t base = i - ((z * in.h + yy) * in.w + xx);
    if (z / zs >= out.d || yy / 2 >= out.h || xx / 2 >= out.w) return false;  // dropped: gradient 0
    for (int64_t a = z / zs * zs; a < z / zs * zs + zs; ++a)
      for (int64_t b = yy / 2 * 2; b < yy / 2 * 2 + 2; ++b)
        for (int64_t c = xx / 2 * 2; c < xx / 2 * 2 + 2; ++c) {
          const int64_t j = base + (a * in.h + b) * in.w + c;
          if (j != i && std::fabs(x[j] - x[i]) < window) return true;
        }
    return false;
  };
  test::GradCheckOptions opt;
  opt.step = 1e-2;
  test::expect_gradients([&] { forward(); return test::dot(r, y.data()); }, {{"x", &x, &dx, near_kink}}, opt);
}

INSTANTIATE_TEST_SUITE_P(Shapes, MaxPoolGrad,
                         ::testing::Values(shape2d(2, 3, 6, 8), shape2d(1, 2, 7, 5), shape2d(1, 1, 2, 2),
                                           shape3d(2, 2, 4, 6, 4), shape3d(1, 3, 5, 3, 7)),
                         [](const auto& info) { return "s" + std::to_string(info.index); });

TEST(MaxPool, HandValuesAndArgmax2D) {
  // One 4x4 channel: each 2x2 window's maximum and where it was.
  std::vector<float> x{1, 2, 0, 0,   //
                       4, 3, 0, 9,   //
                       5, 5, 1, 1,   //
                       5, 5, 1, 2};
  std::vector<float> y(4);
  std::vector<uint8_t> arg(4);
  maxpool_forward(Tensor(x.data(), shape2d(1, 1, 4, 4)), Tensor(y.data(), shape2d(1, 1, 2, 2)), arg.data());
  EXPECT_EQ(y, (std::vector<float>{4, 9, 5, 2}));
  EXPECT_EQ(arg, (std::vector<uint8_t>{2, 3, 0, 3}));  // ties go to the first: (0, 0)

  std::vector<float> dy{10, 20, 30, 40}, dx(16, -1.f);
  maxpool_backward(Tensor(dy.data(), shape2d(1, 1, 2, 2)), arg.data(), Tensor(dx.data(), shape2d(1, 1, 4, 4)),
                   GradMode::overwrite);
  EXPECT_EQ(dx, (std::vector<float>{0, 0, 0, 0, 10, 0, 0, 20, 30, 0, 0, 0, 0, 0, 0, 40}));
  maxpool_backward(Tensor(dy.data(), shape2d(1, 1, 2, 2)), arg.data(), Tensor(dx.data(), shape2d(1, 1, 4, 4)),
                   GradMode::accumulate);
  EXPECT_EQ(dx[4], 20.f);
  EXPECT_EQ(dx[1], 0.f);
}

TEST(MaxPool, ThreeDWindowIsEightElements) {
  std::vector<float> x(8);
  for (int i = 0; i < 8; ++i) x[i] = float(i == 5 ? 10 : i);
  float y;
  uint8_t arg;
  maxpool_forward(Tensor(x.data(), shape3d(1, 1, 2, 2, 2)), Tensor(&y, shape3d(1, 1, 1, 1, 1)), &arg);
  EXPECT_EQ(y, 10.f);
  EXPECT_EQ(arg, 5);  // z = 1, y = 0, x = 1
}

TEST(MaxPool, OddSizesDropTheRemainder) {
  EXPECT_EQ(maxpool_output_shape(shape2d(1, 1, 7, 5)), shape2d(1, 1, 3, 2));
  EXPECT_EQ(maxpool_output_shape(shape3d(1, 1, 5, 4, 3)), shape3d(1, 1, 2, 2, 1));
  EXPECT_THROW(maxpool_output_shape(shape2d(1, 1, 1, 8)), std::invalid_argument);
}

}  // namespace
}  // namespace unet

namespace unet {
namespace {

// pool_window_offset (the CUDA kernels' window order) names the element the
// CPU forward chose: y equals x at the offset of its argmax, 2D and 3D, odd sizes.
TEST(MaxPool, WindowOffsetNamesTheWinner) {
  for (Shape in : {shape2d(2, 3, 7, 9), shape3d(1, 2, 5, 6, 7)}) {
    const Shape out = maxpool_output_shape(in);
    auto x = random_vector(in.count(), 11);
    std::vector<float> y(out.count());
    std::vector<uint8_t> arg(out.count());
    maxpool_forward(Tensor(x.data(), in), Tensor(y.data(), out), arg.data());
    for (int64_t nc = 0; nc < in.n * in.c; ++nc)
      for (int64_t oz = 0; oz < out.d; ++oz)
        for (int64_t oy = 0; oy < out.h; ++oy)
          for (int64_t ox = 0; ox < out.w; ++ox) {
            const int64_t o = nc * out.spatial() + (oz * out.h + oy) * out.w + ox;
            const int64_t at = pool_window_offset(oz, oy, ox, arg[o], in.dims, in.h, in.w);
            ASSERT_EQ(y[o], x[nc * in.spatial() + at]) << in.str() << " output " << o;
          }
  }
}

}  // namespace
}  // namespace unet
