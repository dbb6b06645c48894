#include "engine/model/sliding_window.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/gradcheck.h"

namespace unet {
namespace {

TEST(SlidingWindow, TileOriginsCoverTheAxisEvenly) {
  EXPECT_EQ(tile_origins(8, 8, 0.5), (std::vector<int64_t>{0}));
  EXPECT_EQ(tile_origins(5, 8, 0.5), (std::vector<int64_t>{0}));
  EXPECT_EQ(tile_origins(20, 8, 0.5), (std::vector<int64_t>{0, 4, 8, 12}));
  EXPECT_EQ(tile_origins(20, 8, 0.0), (std::vector<int64_t>{0, 6, 12}));
  EXPECT_EQ(tile_origins(512, 256, 0.5), (std::vector<int64_t>{0, 128, 256}));
}

// A U-Net of 1x1 convolutions sees only its own 2x2(x2) pooling block, so tiles
// that start on even positions must reproduce the whole image's forward pass:
// blending identical values changes nothing. With the up-convolution's taps all
// equal the net is also unchanged by flips (an even-sized tile's flip maps
// pooling blocks onto pooling blocks), so mirroring must give the same logits:
// a flip mapped back to the wrong place would not.
UNetConfig pointwise(int dims) {
  UNetConfig c;
  c.dims = dims;
  c.depth = 1;
  c.kernel = 1;
  c.start_filters = 4;
  c.classes = 3;
  c.head = Head::softmax;
  c.in_channels = 2;
  c.seed = 4;
  return c;
}

void expect_tiles_match_whole(int dims, bool mirror) {
  const std::array<int64_t, 3> size = dims == 2 ? std::array<int64_t, 3>{1, 12, 20} : std::array<int64_t, 3>{6, 8, 10};
  const Shape whole = dims == 2 ? shape2d(1, 2, size[1], size[2]) : shape3d(1, 2, size[0], size[1], size[2]);
  const Shape tile = dims == 2 ? shape2d(3, 2, 8, 8) : shape3d(2, 2, 4, 4, 4);
  const auto image = test::random_vector(whole.count(), 9);
  UNet a(pointwise(dims)), b(pointwise(dims));
  for (UNet* net : {&a, &b})
    for (const ParamInfo& p : net->param_table()) {
      if (p.name != "up0.weight") continue;
      const int64_t taps = dims == 2 ? 4 : 8;
      for (int64_t i = 0; i < p.count; ++i) net->params()[p.offset + i] = net->params()[p.offset + i / taps * taps];
    }
  a.plan(tile);
  b.plan(whole);
  std::vector<float> x(image);
  const Tensor ref = b.forward(Tensor(x.data(), whole), false);
  const std::vector<float> got = predict_logits(a, image.data(), size, {0.5, mirror});
  ASSERT_EQ(static_cast<int64_t>(got.size()), ref.shape.count());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], ref.data[i], 1e-4) << "element " << i;
}

TEST(SlidingWindow, TilesReproduceTheWholeImage2D) { expect_tiles_match_whole(2, false); }
TEST(SlidingWindow, TilesReproduceTheWholeImage3D) { expect_tiles_match_whole(3, false); }
TEST(SlidingWindow, MirroringMapsEveryFlipBack2D) { expect_tiles_match_whole(2, true); }
TEST(SlidingWindow, MirroringMapsEveryFlipBack3D) { expect_tiles_match_whole(3, true); }

// An image smaller than the tile is padded and the result cropped back.
TEST(SlidingWindow, ImageSmallerThanTheTile) {
  UNet a(pointwise(2));
  a.plan(shape2d(1, 2, 8, 8));
  const auto image = test::random_vector(2 * 6 * 4, 3);
  const std::vector<float> got = predict_logits(a, image.data(), {1, 6, 4}, {});
  EXPECT_EQ(got.size(), 3u * 6 * 4);
  for (float v : got) EXPECT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace unet
