// Layers large enough that the CPU lowering runs in several chunks, against
// the naive references: slower than the rest (label "slow").
#include <gtest/gtest.h>

#include "kernels/conv.h"
#include "kernels/upconv.h"
#include "tests/gradcheck.h"
#include "tests/reference.h"

namespace unet {
namespace {

using test::random_vector;

// A layer big enough that the column buffer is cut into several chunks of rows.
TEST(Conv, ChunkedLoweringMatchesReference3D) {
  const Shape in = shape3d(1, 16, 24, 40, 40);
  const ConvSpec spec{3, Padding::same};
  const int64_t co = 2, wcount = co * 16 * 27;
  ASSERT_LT(conv_workspace_floats(in, co, spec), int64_t(16) * 27 * 24 * 40 * 40) << "expected chunking";
  const Shape out = conv_output_shape(in, co, spec);
  auto x = random_vector(in.count(), 1), w = random_vector(wcount, 2), b = random_vector(co, 3);
  auto dy = random_vector(out.count(), 4);
  std::vector<float> y(out.count()), ws(conv_workspace_floats(in, co, spec));
  conv_forward(Tensor(x.data(), in), w.data(), b.data(), Tensor(y.data(), out), spec, ws.data());
  const test::ConvRef ref(in, co, spec);
  const auto yref = ref.forward(x, w, b);
  for (int64_t i = 0; i < out.count(); ++i) ASSERT_NEAR(y[i], yref[i], 1e-3) << i;

  std::vector<float> dx(in.count()), dw(wcount, 0.f);
  conv_backward(Tensor(x.data(), in), w.data(), Tensor(dy.data(), out), Tensor(dx.data(), in), dw.data(), nullptr,
                spec, GradMode::overwrite, ws.data());
  std::vector<double> dxref, dwref;
  ref.backward(x, w, dy, dxref, dwref);
  for (int64_t i = 0; i < in.count(); ++i) ASSERT_NEAR(dx[i], dxref[i], 1e-3) << "dx " << i;
  for (int64_t i = 0; i < wcount; ++i) ASSERT_NEAR(dw[i], dwref[i], 1e-3 * (1 + std::fabs(dwref[i]))) << "dw " << i;
}

// Large enough that the GEMM product is cut into several chunks of input rows.
TEST(Upconv, ChunkedMatchesReference3D) {
  const Shape in = shape3d(1, 8, 16, 32, 32);
  const int64_t co = 64, wcount = 8 * co * 8;
  ASSERT_LT(upconv_workspace_floats(in, co), co * 8 * in.spatial()) << "expected chunking";
  const Shape out = upconv_output_shape(in, co);
  auto x = random_vector(in.count(), 1), w = random_vector(wcount, 2), b = random_vector(co, 3);
  auto dy = random_vector(out.count(), 4);
  std::vector<float> y(out.count()), ws(upconv_workspace_floats(in, co));
  upconv_forward(Tensor(x.data(), in), w.data(), b.data(), Tensor(y.data(), out), ws.data());
  const auto yref = test::upconv_reference(in, co, x, w, b);
  for (int64_t i = 0; i < out.count(); ++i) ASSERT_NEAR(y[i], yref[i], 1e-4) << i;

  std::vector<float> dx(in.count()), dw(wcount, 0.f);
  upconv_backward(Tensor(x.data(), in), w.data(), Tensor(dy.data(), out), Tensor(dx.data(), in), dw.data(), nullptr,
                  GradMode::overwrite, ws.data());
  std::vector<double> dxref(in.count(), 0.0), dwref(wcount, 0.0);
  test::upconv_each_tap(in, co, [&](int64_t yo, int64_t xo, int64_t wo) {
    dxref[xo] += double(dy[yo]) * w[wo];
    dwref[wo] += double(dy[yo]) * x[xo];
  });
  for (int64_t i = 0; i < in.count(); ++i) ASSERT_NEAR(dx[i], dxref[i], 1e-3) << "dx " << i;
  for (int64_t i = 0; i < wcount; ++i) ASSERT_NEAR(dw[i], dwref[i], 1e-3 * (1 + std::fabs(dwref[i]))) << "dw " << i;
}

}  // namespace
}  // namespace unet
