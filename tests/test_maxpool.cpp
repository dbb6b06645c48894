#include "kernels/maxpool.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/gradcheck.h"

namespace unet {
namespace {

using test::random_vector;

struct Case {
  Shape in;
  PoolWindow win = {};
};

class MaxPoolGrad : public ::testing::TestWithParam<Case> {};

TEST_P(MaxPoolGrad, MatchesFiniteDifferences) {
  const Shape in = GetParam().in;
  const PoolWindow win = window_for(in, GetParam().win);
  const Shape out = maxpool_output_shape(in, win);
  auto x = random_vector(in.count(), 1);
  const auto r = random_vector(out.count(), 2);
  std::vector<float> y(out.count());
  std::vector<uint8_t> arg(out.count());
  auto forward = [&] { maxpool_forward(Tensor(x.data(), in), Tensor(y.data(), out), arg.data(), win); };
  forward();
  std::vector<float> dx(in.count(), 5.f);
  maxpool_backward(Tensor(const_cast<float*>(r.data()), out), arg.data(), Tensor(dx.data(), in), GradMode::overwrite,
                   win);

  // Kink: an element within 2 steps of another element of its window (a near
  // tie) may change the winner when perturbed.
  const double window = 2 * 2e-2;
  auto near_kink = [&](int64_t i) {
    const int64_t xx = i % in.w, yy = (i / in.w) % in.h, z = (i / (in.w * in.h)) % in.d;
    const int64_t base = i - ((z * in.h + yy) * in.w + xx);
    if (z / win.d >= out.d || yy / win.h >= out.h || xx / win.w >= out.w) return false;  // dropped: gradient 0
    for (int64_t a = z / win.d * win.d; a < (z / win.d + 1) * win.d; ++a)
      for (int64_t b = yy / win.h * win.h; b < (yy / win.h + 1) * win.h; ++b)
        for (int64_t c = xx / win.w * win.w; c < (xx / win.w + 1) * win.w; ++c) {
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
                         ::testing::Values(Case{shape2d(2, 3, 6, 8)}, Case{shape2d(1, 2, 7, 5)},
                                           Case{shape2d(1, 1, 2, 2)}, Case{shape3d(2, 2, 4, 6, 4)},
                                           Case{shape3d(1, 3, 5, 3, 7)},
                                           // Anisotropic windows (2x2x1, 2x1x2, 1x2x2; 2D 2x1), odd remainders.
                                           Case{shape3d(2, 2, 3, 6, 5), {1, 2, 2}}, Case{shape3d(1, 2, 5, 3, 4), {2, 1, 2}},
                                           Case{shape3d(1, 2, 4, 5, 3), {2, 2, 1}}, Case{shape2d(1, 3, 5, 7), {1, 1, 2}}),
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

// A 2x2x1 window leaves the depth as it is: four elements, argmax in window_offset's order.
TEST(MaxPool, AnisotropicWindowKeepsTheUnpooledAxis) {
  EXPECT_EQ(maxpool_output_shape(shape3d(1, 1, 3, 4, 6), {1, 2, 2}), shape3d(1, 1, 3, 2, 3));
  EXPECT_EQ(maxpool_output_shape(shape2d(1, 1, 4, 6), {2, 1, 2}), shape2d(1, 1, 4, 3));  // 2D: depth never pooled
  std::vector<float> x{1, 7, 3, 2,   // z = 0: its 2x2 plane is one window
                       8, 0, 4, 9};  // z = 1: another
  std::vector<float> y(2);
  std::vector<uint8_t> arg(2);
  maxpool_forward(Tensor(x.data(), shape3d(1, 1, 2, 2, 2)), Tensor(y.data(), shape3d(1, 1, 2, 1, 1)), arg.data(),
                  {1, 2, 2});
  EXPECT_EQ(y, (std::vector<float>{7, 9}));
  EXPECT_EQ(arg, (std::vector<uint8_t>{1, 3}));  // (y 0, x 1) and (y 1, x 1)
}

}  // namespace
}  // namespace unet

namespace unet {
namespace {

// window_offset (the CUDA kernels' window order) names the element the CPU
// forward chose: y equals x at the offset of its argmax, 2D and 3D, odd sizes,
// anisotropic windows.
TEST(MaxPool, WindowOffsetNamesTheWinner) {
  for (Case c : {Case{shape2d(2, 3, 7, 9)}, Case{shape3d(1, 2, 5, 6, 7)}, Case{shape3d(1, 2, 5, 6, 7), {1, 2, 2}},
                 Case{shape3d(1, 2, 5, 6, 7), {2, 2, 1}}, Case{shape2d(1, 2, 5, 6), {1, 2, 1}}}) {
    const Shape in = c.in;
    const PoolWindow win = window_for(in, c.win);
    const Shape out = maxpool_output_shape(in, win);
    auto x = random_vector(in.count(), 11);
    std::vector<float> y(out.count());
    std::vector<uint8_t> arg(out.count());
    maxpool_forward(Tensor(x.data(), in), Tensor(y.data(), out), arg.data(), win);
    for (int64_t nc = 0; nc < in.n * in.c; ++nc)
      for (int64_t oz = 0; oz < out.d; ++oz)
        for (int64_t oy = 0; oy < out.h; ++oy)
          for (int64_t ox = 0; ox < out.w; ++ox) {
            const int64_t o = nc * out.spatial() + (oz * out.h + oy) * out.w + ox;
            const int64_t at = window_offset(oz, oy, ox, arg[o], win, in.h, in.w);
            ASSERT_EQ(y[o], x[nc * in.spatial() + at]) << in.str() << " output " << o;
          }
  }
}

}  // namespace
}  // namespace unet
