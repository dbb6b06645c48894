// The oneDNN convolution against the im2col + OpenBLAS reference (conv.h):
// fp32 within 1e-5 relative, bf16 within the rounding of its operands; 2D and
// 3D, "same" and "valid", 1x1, batches, channel slices of larger buffers,
// both gradient modes. The finite-difference checks of conv.h's arithmetic
// live in test_conv; here the question is whether oneDNN computes the same.
#include "kernels/conv_dnnl.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/base/half.h"
#include "tests/gradcheck.h"

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

int64_t weight_count(const Shape& in, int64_t co, const ConvSpec& spec) {
  return co * in.c * (in.dims == 3 ? spec.kernel : 1) * spec.kernel * spec.kernel;
}

// |a - b| <= tol * (|b| + scale): relative, with the magnitude of the whole
// result as the floor, so that a sum that cancels to near zero is not held to
// a relative bound its terms cannot meet.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  double scale = 0;
  for (float v : want) scale = std::max(scale, double(std::fabs(v)));
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_LE(std::fabs(double(got[i]) - want[i]), tol * (std::fabs(want[i]) + scale))
        << what << "[" << i << "]: " << got[i] << " against " << want[i];
}

std::vector<float> rounded_to_bf16(std::vector<float> v) {
  for (float& f : v) f = bf16_to_float(bf16_from_float(f));
  return v;
}

struct Results {
  std::vector<float> y, dx, dw, db;
};

// One layer's forward and backward (dx overwritten, dw and db accumulated
// onto `prior`) through the reference, or through oneDNN in `type`.
Results run(const Case& c, const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b,
            const std::vector<float>& dy, bool dnnl, DType type = DType::f32) {
  const Shape out = conv_output_shape(c.in, c.co, c.spec);
  Results r{std::vector<float>(out.count()), std::vector<float>(c.in.count(), 7.f),
            std::vector<float>(w.size(), 0.25f), std::vector<float>(b.size(), 0.5f)};
  Tensor tx(const_cast<float*>(x.data()), c.in), ty(r.y.data(), out), tdy(const_cast<float*>(dy.data()), out),
      tdx(r.dx.data(), c.in);
  if (dnnl) {
    const ConvDnnl conv(c.in, c.co, c.spec, {}, type);
    std::vector<char> ws(conv.workspace_bytes() + 64);
    void* at = ws.data() + (64 - reinterpret_cast<uintptr_t>(ws.data()) % 64) % 64;
    conv.forward(tx, w.data(), b.data(), ty, at);
    conv.backward(tx, w.data(), tdy, tdx, r.dw.data(), r.db.data(), GradMode::overwrite, at);
  } else {
    std::vector<float> ws(conv_workspace_floats(c.in, c.co, c.spec));
    conv_forward(tx, w.data(), b.data(), ty, c.spec, ws.data());
    conv_backward(tx, w.data(), tdy, tdx, r.dw.data(), r.db.data(), c.spec, GradMode::overwrite, ws.data());
  }
  return r;
}

class ConvDnnlParity : public ::testing::TestWithParam<Case> {};

TEST_P(ConvDnnlParity, Fp32MatchesTheReference) {
  const Case c = GetParam();
  const Shape out = conv_output_shape(c.in, c.co, c.spec);
  const auto x = random_vector(c.in.count(), 1), w = random_vector(weight_count(c.in, c.co, c.spec), 2),
             b = random_vector(c.co, 3), dy = random_vector(out.count(), 4);
  const Results want = run(c, x, w, b, dy, false), got = run(c, x, w, b, dy, true);
  expect_close(got.y, want.y, 1e-5, "y");
  expect_close(got.dx, want.dx, 1e-5, "dx");
  expect_close(got.dw, want.dw, 1e-5, "dw");
  expect_close(got.db, want.db, 1e-5, "dbias");
}

// bf16: the reference run on the operands rounded to bf16 (what the kernels
// multiply), its y and dx rounded as the kernels round them; what is left is
// the order of fp32 sums and one bf16 rounding step of the outputs. The bias
// gradient is summed from dy as it is, in fp32.
TEST_P(ConvDnnlParity, Bf16MatchesTheReferenceOnRoundedOperands) {
  if (!cpu_has_bf16_convolutions()) GTEST_SKIP() << "this CPU has no bf16 convolutions in oneDNN (AVX-512 needed)";
  const Case c = GetParam();
  const Shape out = conv_output_shape(c.in, c.co, c.spec);
  const auto x = random_vector(c.in.count(), 1), w = random_vector(weight_count(c.in, c.co, c.spec), 2),
             b = random_vector(c.co, 3), dy = random_vector(out.count(), 4);
  const Results want = run(c, rounded_to_bf16(x), rounded_to_bf16(w), b, rounded_to_bf16(dy), false),
                fp32 = run(c, x, w, b, dy, false), got = run(c, x, w, b, dy, true, DType::bf16);
  const double bf16_step = 1.0 / 128;  // 8 bits of mantissa: one rounding of the result
  expect_close(got.y, want.y, bf16_step, "y");
  expect_close(got.dx, want.dx, bf16_step, "dx");
  expect_close(got.dw, want.dw, 1e-5, "dw");
  expect_close(got.db, fp32.db, 1e-6, "dbias");  // summed from the fp32 dy
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvDnnlParity,
    ::testing::Values(Case{shape2d(2, 3, 7, 6), 4, {3, Padding::same}},
                      Case{shape2d(1, 2, 9, 8), 3, {3, Padding::valid}},
                      Case{shape2d(2, 3, 5, 5), 2, {1, Padding::same}},
                      Case{shape2d(1, 2, 7, 9), 2, {5, Padding::same}},
                      Case{shape2d(1, 1, 6, 5), 1, {3, Padding::same}},
                      Case{shape2d(2, 16, 12, 10), 32, {3, Padding::same}},  // blocked channels
                      Case{shape2d(1, 35, 9, 7), 19, {3, Padding::same}},    // and their remainders
                      Case{shape3d(2, 2, 4, 5, 3), 3, {3, Padding::same}},
                      Case{shape3d(1, 2, 5, 6, 5), 2, {3, Padding::valid}},
                      Case{shape3d(2, 3, 3, 4, 5), 2, {1, Padding::valid}},
                      Case{shape3d(2, 16, 4, 6, 5), 16, {3, Padding::same}},
                      Case{shape2d(2, 4, 2, 3), 8, {3, Padding::same}},  // smaller than the kernel (a deep bottleneck)
                      Case{shape3d(1, 2, 1, 2, 2), 3, {3, Padding::same}}));

// The zero-copy concatenation: x a slice of a larger buffer, y written into
// its slice (the other channels untouched), dy read from a slice, dx added.
TEST(ConvDnnl, ChannelSlicesAndAccumulatedGradients) {
  const Shape in = shape3d(2, 5, 3, 6, 4), big_in = shape3d(2, 9, 3, 6, 4);
  const int64_t co = 6;
  const ConvSpec spec{3, Padding::same};
  const Shape big_out = conv_output_shape(big_in, 11, spec);
  const auto xb = random_vector(big_in.count(), 1), w = random_vector(weight_count(in, co, spec), 2),
             b = random_vector(co, 3), dyb = random_vector(big_out.count(), 4);
  const Tensor x = Tensor(const_cast<float*>(xb.data()), big_in).channels(2, in.c);
  const Tensor dy = Tensor(const_cast<float*>(dyb.data()), big_out).channels(4, co);

  std::vector<float> want_big(big_out.count(), -3.f), want_dx(in.count(), 1.5f), want_dw(w.size(), 0.5f),
      want_db(co, 0.f), ref_ws(conv_workspace_floats(in, co, spec));
  const Tensor want_y = Tensor(want_big.data(), big_out).channels(3, co);
  conv_forward(x, w.data(), b.data(), want_y, spec, ref_ws.data());
  conv_backward(x, w.data(), dy, Tensor(want_dx.data(), in), want_dw.data(), want_db.data(), spec,
                GradMode::accumulate, ref_ws.data());

  const ConvDnnl conv(in, co, spec, {x.batch_stride, want_y.batch_stride, dy.batch_stride});
  std::vector<float> got_big(big_out.count(), -3.f), got_dx(in.count(), 1.5f), got_dw(w.size(), 0.5f),
      got_db(co, 0.f), ws(conv.workspace_bytes() / sizeof(float) + 16);
  const Tensor got_y = Tensor(got_big.data(), big_out).channels(3, co);
  conv.forward(x, w.data(), b.data(), got_y, ws.data());
  conv.backward(x, w.data(), dy, Tensor(got_dx.data(), in), got_dw.data(), got_db.data(), GradMode::accumulate,
                ws.data());
  expect_close(got_big, want_big, 1e-5, "y and the channels around it");
  expect_close(got_dx, want_dx, 1e-5, "dx");
  expect_close(got_dw, want_dw, 1e-5, "dw");
  expect_close(got_db, want_db, 1e-5, "dbias");

  // The input image's dx (null) is skipped; dw adds one more pass's gradient.
  std::vector<float> twice = got_dw, added(w.size()), one_pass(w.size());
  conv.backward(x, w.data(), dy, Tensor(nullptr, in), twice.data(), nullptr, GradMode::overwrite, ws.data());
  for (size_t i = 0; i < w.size(); ++i) added[i] = twice[i] - got_dw[i], one_pass[i] = want_dw[i] - 0.5f;
  expect_close(added, one_pass, 1e-5, "dw added again");
}

TEST(ConvDnnl, ItsRunsRepeatBitForBit) {
  const Case c{shape2d(2, 16, 20, 18), 16, {3, Padding::same}};
  const Shape out = conv_output_shape(c.in, c.co, c.spec);
  const auto x = random_vector(c.in.count(), 1), w = random_vector(weight_count(c.in, c.co, c.spec), 2),
             b = random_vector(c.co, 3), dy = random_vector(out.count(), 4);
  const Results a = run(c, x, w, b, dy, true), again = run(c, x, w, b, dy, true);
  EXPECT_EQ(a.y, again.y);
  EXPECT_EQ(a.dx, again.dx);
  EXPECT_EQ(a.dw, again.dw);
}

TEST(ConvDnnl, NamesTheKernelsItChose) {
  const ConvDnnl conv(shape2d(1, 16, 8, 8), 16, {3, Padding::same});
  const std::vector<std::string> k = conv.kernels();
  ASSERT_EQ(k.size(), 3u);
  for (const std::string& name : k) EXPECT_FALSE(name.empty());
  EXPECT_EQ(onednn_version().rfind("2.", 0) == 0 || onednn_version().rfind("3.", 0) == 0, true) << onednn_version();
}

}  // namespace
}  // namespace unet
