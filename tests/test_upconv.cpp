#include "kernels/upconv.h"

#include <gtest/gtest.h>

#include "tests/gradcheck.h"
#include "tests/reference.h"

namespace unet {
namespace {

using test::random_vector;
using test::upconv_reference;

struct Case {
  Shape in;
  int64_t co;
  PoolWindow win = {};
};
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.in.str() << " -> " << c.co << " by " << c.win.w << "x" << c.win.h << "x" << c.win.d;
}

class UpconvGrad : public ::testing::TestWithParam<Case> {};

TEST_P(UpconvGrad, MatchesFiniteDifferencesAndReference) {
  const auto [in, co, win] = GetParam();
  const Shape out = upconv_output_shape(in, co, win);
  const int64_t wcount = upconv_weight_count(in, co, win);
  auto x = random_vector(in.count(), 1), w = random_vector(wcount, 2), b = random_vector(co, 3);
  const auto r = random_vector(out.count(), 4);
  std::vector<float> y(out.count()), ws(upconv_workspace_floats(in, co, win));
  auto forward = [&] {
    upconv_forward(Tensor(x.data(), in), w.data(), b.data(), Tensor(y.data(), out), ws.data(), win);
  };
  forward();
  const auto yref = upconv_reference(in, co, x, w, b, win);
  for (int64_t i = 0; i < out.count(); ++i) ASSERT_NEAR(y[i], yref[i], 1e-4) << i;

  std::vector<float> dx(in.count(), 3.f), dw(wcount, 0.f), db(co, 0.f);
  upconv_backward(Tensor(x.data(), in), w.data(), Tensor(const_cast<float*>(r.data()), out), Tensor(dx.data(), in),
                  dw.data(), db.data(), GradMode::overwrite, ws.data(), win);
  test::expect_gradients([&] { forward(); return test::dot(r, y.data()); },
                         {{"x", &x, &dx, nullptr}, {"w", &w, &dw, nullptr}, {"bias", &b, &db, nullptr}});
}

INSTANTIATE_TEST_SUITE_P(Shapes, UpconvGrad,
                         ::testing::Values(Case{shape2d(2, 3, 4, 5), 2}, Case{shape2d(1, 4, 3, 3), 4},
                                           Case{shape2d(1, 1, 1, 1), 1}, Case{shape3d(2, 2, 2, 3, 4), 3},
                                           Case{shape3d(1, 3, 3, 2, 3), 2},
                                           // Anisotropic: an axis the level did not pool is not doubled.
                                           Case{shape3d(2, 2, 3, 2, 3), 3, {1, 2, 2}},
                                           Case{shape3d(1, 3, 2, 3, 2), 2, {2, 1, 2}},
                                           Case{shape3d(1, 2, 2, 2, 3), 2, {2, 2, 1}},
                                           Case{shape2d(2, 3, 3, 4), 2, {1, 1, 2}}));

// The decoder writes its up-convolution into the second half of its
// concatenation buffer; the other half stays as the encoder left it.
TEST(Upconv, WritesIntoChannelSliceAndAccumulates) {
  const Shape in = shape2d(2, 4, 3, 3);
  auto x = random_vector(in.count(), 1), w = random_vector(4 * 2 * 4, 2);
  std::vector<float> ws(upconv_workspace_floats(in, 2));
  const Shape out = upconv_output_shape(in, 2);
  std::vector<float> alone(out.count());
  upconv_forward(Tensor(x.data(), in), w.data(), nullptr, Tensor(alone.data(), out), ws.data());
  const Shape cat = shape2d(2, 4, 6, 6);
  std::vector<float> buf(cat.count(), 1.5f);
  const Tensor slice = Tensor(buf.data(), cat).channels(2, 2);
  upconv_forward(Tensor(x.data(), in), w.data(), nullptr, slice, ws.data());
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 4; ++c)
      for (int64_t i = 0; i < 36; ++i)
        EXPECT_EQ(buf[(n * 4 + c) * 36 + i], c < 2 ? 1.5f : alone[(n * 2 + c - 2) * 36 + i]);

  std::vector<float> fresh(in.count()), acc(in.count(), 2.f), dw(w.size(), 0.f);
  upconv_backward(Tensor(x.data(), in), w.data(), slice, Tensor(fresh.data(), in), dw.data(), nullptr,
                  GradMode::overwrite, ws.data());
  upconv_backward(Tensor(x.data(), in), w.data(), slice, Tensor(acc.data(), in), dw.data(), nullptr,
                  GradMode::accumulate, ws.data());
  for (int64_t i = 0; i < in.count(); ++i) EXPECT_NEAR(acc[i], fresh[i] + 2.f, 1e-5);
}

TEST(Upconv, OutputShapeIsTheInputTimesTheWindow) {
  EXPECT_EQ(upconv_output_shape(shape2d(2, 8, 5, 7), 4), shape2d(2, 4, 10, 14));
  EXPECT_EQ(upconv_output_shape(shape3d(1, 8, 3, 5, 7), 4), shape3d(1, 4, 6, 10, 14));
  EXPECT_EQ(upconv_output_shape(shape3d(1, 8, 3, 5, 7), 4, {1, 2, 2}), shape3d(1, 4, 3, 10, 14));
  EXPECT_EQ(upconv_output_shape(shape2d(1, 8, 5, 7), 4, {2, 2, 1}), shape2d(1, 4, 10, 7));  // 2D: depth never pooled
  EXPECT_EQ(upconv_weight_count(shape3d(1, 8, 3, 5, 7), 4, {1, 2, 2}), 8 * 4 * 4);
}

}  // namespace
}  // namespace unet
