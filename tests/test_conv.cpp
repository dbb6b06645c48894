#include "kernels/conv.h"

#include <gtest/gtest.h>

#include "tests/gradcheck.h"
#include "tests/reference.h"

namespace unet {
namespace {

using test::random_vector;

struct Case {
  Shape in;
  int64_t co;
  ConvSpec spec;
};
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.in.str() << " -> " << c.co << " k" << c.spec.kernel
      << (c.spec.padding == Padding::same ? " same" : " valid");
}

class ConvGrad : public ::testing::TestWithParam<Case> {};

TEST_P(ConvGrad, MatchesFiniteDifferencesAndReference) {
  const auto [in, co, spec] = GetParam();
  const Shape out = conv_output_shape(in, co, spec);
  const int64_t wcount = co * in.c * (in.dims == 3 ? spec.kernel : 1) * spec.kernel * spec.kernel;
  auto x = random_vector(in.count(), 1), w = random_vector(wcount, 2), b = random_vector(co, 3);
  const auto r = random_vector(out.count(), 4);
  std::vector<float> y(out.count()), ws(conv_workspace_floats(in, co, spec));

  auto forward = [&] { conv_forward(Tensor(x.data(), in), w.data(), b.data(), Tensor(y.data(), out), spec, ws.data()); };
  forward();
  const test::ConvRef ref(in, co, spec);
  const auto yref = ref.forward(x, w, b);
  for (int64_t i = 0; i < out.count(); ++i) ASSERT_NEAR(y[i], yref[i], 1e-4) << "y[" << i << "]";

  std::vector<float> dx(in.count(), 7.f), dw(wcount, 0.f), db(co, 0.f);  // dx: overwritten
  conv_backward(Tensor(x.data(), in), w.data(), Tensor(const_cast<float*>(r.data()), out), Tensor(dx.data(), in),
                dw.data(), db.data(), spec, GradMode::overwrite, ws.data());
  test::expect_gradients([&] { forward(); return test::dot(r, y.data()); },
                         {{"x", &x, &dx, nullptr}, {"w", &w, &dw, nullptr}, {"bias", &b, &db, nullptr}});
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvGrad,
    ::testing::Values(Case{shape2d(2, 3, 7, 6), 4, {3, Padding::same}},
                      Case{shape2d(1, 2, 9, 8), 3, {3, Padding::valid}},
                      Case{shape2d(2, 3, 5, 5), 2, {1, Padding::same}},
                      Case{shape2d(1, 2, 7, 9), 2, {5, Padding::same}},
                      Case{shape2d(1, 1, 6, 5), 1, {3, Padding::same}},
                      Case{shape3d(2, 2, 4, 5, 3), 3, {3, Padding::same}},
                      Case{shape3d(1, 2, 5, 6, 5), 2, {3, Padding::valid}},
                      Case{shape3d(2, 3, 3, 4, 5), 2, {1, Padding::valid}},
                      Case{shape2d(2, 4, 2, 3), 8, {3, Padding::same}},  // smaller than the kernel (a deep bottleneck)
                      Case{shape3d(1, 2, 1, 2, 2), 3, {3, Padding::same}}));

// Zero-copy concatenation: the convolution writes into its channel slice of a
// larger buffer and leaves the other channels alone; backward reads the slice.
TEST(Conv, WritesIntoChannelSlice) {
  const Shape in = shape2d(2, 2, 6, 6);
  const ConvSpec spec{3, Padding::same};
  auto x = random_vector(in.count(), 1), w = random_vector(3 * 2 * 9, 2), b = random_vector(3, 3);
  std::vector<float> ws(conv_workspace_floats(in, 3, spec));
  const Shape out = conv_output_shape(in, 3, spec);
  std::vector<float> alone(out.count());
  conv_forward(Tensor(x.data(), in), w.data(), b.data(), Tensor(alone.data(), out), spec, ws.data());

  const Shape cat = shape2d(2, 5, 6, 6);
  std::vector<float> buf(cat.count(), -9.f);
  const Tensor slice = Tensor(buf.data(), cat).channels(2, 3);
  conv_forward(Tensor(x.data(), in), w.data(), b.data(), slice, spec, ws.data());
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 5; ++c)
      for (int64_t i = 0; i < 36; ++i) {
        const float got = buf[(n * 5 + c) * 36 + i];
        if (c < 2) EXPECT_EQ(got, -9.f);
        else EXPECT_EQ(got, alone[(n * 3 + c - 2) * 36 + i]);
      }

  std::vector<float> dx1(in.count()), dx2(in.count()), dw1(54, 0.f), dw2(54, 0.f);
  conv_backward(Tensor(x.data(), in), w.data(), Tensor(alone.data(), out), Tensor(dx1.data(), in), dw1.data(),
                nullptr, spec, GradMode::overwrite, ws.data());
  conv_backward(Tensor(x.data(), in), w.data(), slice, Tensor(dx2.data(), in), dw2.data(), nullptr, spec,
                GradMode::overwrite, ws.data());
  EXPECT_EQ(dx1, dx2);
  EXPECT_EQ(dw1, dw2);
}

TEST(Conv, AccumulateModeAddsAndNullDxIsSkipped) {
  const Shape in = shape2d(1, 2, 5, 5);
  const ConvSpec spec{3, Padding::same};
  auto x = random_vector(in.count(), 1), w = random_vector(2 * 2 * 9, 2);
  auto dy = random_vector(in.count(), 3);
  std::vector<float> ws(conv_workspace_floats(in, 2, spec)), dw(36, 0.f);
  std::vector<float> fresh(in.count()), acc(in.count(), 1.f);
  conv_backward(Tensor(x.data(), in), w.data(), Tensor(dy.data(), in), Tensor(fresh.data(), in), dw.data(), nullptr,
                spec, GradMode::overwrite, ws.data());
  conv_backward(Tensor(x.data(), in), w.data(), Tensor(dy.data(), in), Tensor(acc.data(), in), dw.data(), nullptr,
                spec, GradMode::accumulate, ws.data());
  for (int64_t i = 0; i < in.count(); ++i) EXPECT_NEAR(acc[i], fresh[i] + 1.f, 1e-5);

  std::vector<float> dw_only(36, 0.f);
  conv_backward(Tensor(x.data(), in), w.data(), Tensor(dy.data(), in), Tensor(nullptr, in), dw_only.data(), nullptr,
                spec, GradMode::overwrite, ws.data());
  for (int i = 0; i < 36; ++i) EXPECT_NEAR(dw_only[i] * 2, dw[i], 1e-5);  // dw accumulated twice above
}

TEST(Conv, BadGeometryIsAClearError) {
  EXPECT_THROW(conv_output_shape(shape2d(1, 1, 8, 8), 1, {2, Padding::same}), std::invalid_argument);
  EXPECT_THROW(conv_output_shape(shape2d(1, 1, 2, 8), 1, {3, Padding::valid}), std::invalid_argument);
  try {
    std::vector<float> x(64), y(64), w(9);
    conv_forward(Tensor(x.data(), shape2d(1, 1, 8, 8)), w.data(), nullptr, Tensor(y.data(), shape2d(1, 1, 4, 16)),
                 {3, Padding::same}, nullptr);
    FAIL() << "expected a shape error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("1x1x4x16"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace unet
