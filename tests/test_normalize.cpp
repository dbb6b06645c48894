#include "io/data/normalize.h"

#include <gtest/gtest.h>

#include <cmath>

namespace unet {
namespace {

Volume image(int64_t c, std::vector<float> v) {
  Volume x;
  x.c = c;
  x.w = static_cast<int64_t>(v.size()) / c;
  x.voxels = std::move(v);
  return x;
}

NormalizationStats one(ChannelNorm n) { return NormalizationStats{{n}}; }

void expect_near(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << i;
}

TEST(Normalize, ZScorePerChannel) {
  Volume x = image(2, {1, 2, 3, 4, 10, 10, 30, 30});
  normalize(x, NormalizationStats{{ChannelNorm{}, ChannelNorm{}}});
  const float s = 1 / std::sqrt(1.25f);  // std of 1, 2, 3, 4
  expect_near(x.voxels, {-1.5f * s, -0.5f * s, 0.5f * s, 1.5f * s, -1, -1, 1, 1});
}

TEST(Normalize, ConstantImageStaysFinite) {
  Volume x = image(1, {5, 5, 5});
  normalize(x, one({}));
  for (float v : x.voxels) EXPECT_EQ(v, 0.f);
  Volume y = image(1, {5, 5});
  normalize(y, one({NormScheme::minmax}));
  for (float v : y.voxels) EXPECT_EQ(v, 0.f);
}

TEST(Normalize, MinMaxWindowFixedNone) {
  Volume x = image(1, {-10, 0, 30});
  normalize(x, one({NormScheme::minmax}));
  expect_near(x.voxels, {0, 0.25f, 1});
  Volume ct = image(1, {-3600, -1000, -500, 0, 400, 2200});
  ChannelNorm w{NormScheme::window};
  w.lo = -1000, w.hi = 400;
  normalize(ct, one(w));
  expect_near(ct.voxels, {0, 0, 500.f / 1400, 1000.f / 1400, 1, 1});
  Volume f = image(1, {1, 2});
  ChannelNorm fx{NormScheme::fixed};
  fx.scale = 1 / 255.0, fx.shift = -0.5;
  normalize(f, one(fx));
  expect_near(f.voxels, {1 / 255.f - 0.5f, 2 / 255.f - 0.5f});
  Volume n = image(1, {7, -3});
  normalize(n, one({NormScheme::none}));
  EXPECT_EQ(n.voxels, (std::vector<float>{7, -3}));
}

TEST(Normalize, CtSchemeFromForeground) {
  // Foreground voxels 0..199 (label 1); background at -3000 must not count.
  NormalizationBuilder b({ChannelNorm{NormScheme::ct}, ChannelNorm{NormScheme::zscore}});
  Volume x;
  x.c = 2, x.w = 400;
  x.voxels.resize(800);
  std::vector<int32_t> lab(400, 0);
  for (int i = 0; i < 400; ++i) {
    x.voxels[i] = i < 200 ? float(i) : -3000.f;
    x.voxels[400 + i] = 1;
    lab[i] = i < 200;
  }
  b.add(x, lab.data());
  const NormalizationStats s = b.finish();
  ASSERT_EQ(s.channels.size(), 2u);
  const ChannelNorm& c = s.channels[0];
  EXPECT_NEAR(c.mean, 99.5, 1e-9);
  EXPECT_NEAR(c.std, std::sqrt((200.0 * 200 - 1) / 12), 1e-9);
  EXPECT_NEAR(c.lo, 0.995, 1e-9);    // numpy.percentile(range(200), 0.5)
  EXPECT_NEAR(c.hi, 198.005, 1e-9);  // numpy.percentile(range(200), 99.5)
  EXPECT_EQ(s.channels[1].scheme, NormScheme::zscore);

  Volume y = image(2, {-3000, 50, 500, 0, 0, 0});
  normalize(y, s);
  EXPECT_NEAR(y.voxels[0], (0.995 - 99.5) / c.std, 1e-5);
  EXPECT_NEAR(y.voxels[1], (50 - 99.5) / c.std, 1e-5);
  EXPECT_NEAR(y.voxels[2], (198.005 - 99.5) / c.std, 1e-5);
}

TEST(Normalize, CtWithoutForegroundIsAnError) {
  NormalizationBuilder b({ChannelNorm{NormScheme::ct}});
  std::vector<int32_t> lab(3, 0);
  b.add(image(1, {1, 2, 3}), lab.data());
  EXPECT_THROW(b.finish(), std::runtime_error);
  EXPECT_THROW(b.add(image(2, {1, 2}), nullptr), FileError);
}

TEST(Normalize, SubsamplesLargeCases) {
  NormalizationBuilder b({ChannelNorm{NormScheme::ct}}, 10);
  std::vector<float> v(1000);
  for (int i = 0; i < 1000; ++i) v[i] = float(i);
  b.add(image(1, v), nullptr);
  const auto s = b.finish();
  EXPECT_NEAR(s.channels[0].mean, 450, 1e-9);  // 0, 100, ..., 900
}

TEST(Normalize, JsonRoundTrip) {
  NormalizationStats s;
  ChannelNorm a{NormScheme::ct};
  a.lo = -1024.5, a.hi = 1500.25, a.mean = 40.125, a.std = 300.75;
  ChannelNorm f{NormScheme::fixed};
  f.scale = 0.25, f.shift = -3;
  s.channels = {a, f, ChannelNorm{NormScheme::zscore}};
  const nlohmann::json j = to_json(s);
  const NormalizationStats r = normalization_from_json(nlohmann::json::parse(j.dump()));
  ASSERT_EQ(r.channels.size(), 3u);
  EXPECT_EQ(r.channels[0].scheme, NormScheme::ct);
  EXPECT_EQ(r.channels[0].lo, a.lo);
  EXPECT_EQ(r.channels[0].hi, a.hi);
  EXPECT_EQ(r.channels[0].mean, a.mean);
  EXPECT_EQ(r.channels[0].std, a.std);
  EXPECT_EQ(r.channels[1].scale, 0.25);
  EXPECT_EQ(r.channels[1].shift, -3);
  EXPECT_EQ(r.channels[2].scheme, NormScheme::zscore);
  EXPECT_THROW(normalization_from_json(nlohmann::json::parse(R"({"channels":[{"scheme":"bogus"}]})")),
               std::invalid_argument);
  EXPECT_THROW(normalization_from_json(nlohmann::json::parse("{}")), std::invalid_argument);
  EXPECT_EQ(parse_norm_scheme("minmax"), NormScheme::minmax);
  EXPECT_EQ(to_string(NormScheme::window), "window");
}

TEST(Normalize, ChannelCountMustMatch) {
  Volume x = image(2, {1, 2});
  EXPECT_THROW(normalize(x, one({})), std::invalid_argument);
}

}  // namespace
}  // namespace unet
