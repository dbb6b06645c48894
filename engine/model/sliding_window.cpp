#include "engine/model/sliding_window.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace unet {

std::vector<int64_t> tile_origins(int64_t size, int64_t tile, double overlap) {
  if (size <= tile) return {0};
  const int64_t step = std::max<int64_t>(1, static_cast<int64_t>(std::floor(double(tile) * (1 - overlap))));
  const int64_t tiles = (size - tile + step - 1) / step + 1;
  std::vector<int64_t> out(tiles);
  // Spread evenly so that the last tile ends at the border.
  for (int64_t i = 0; i < tiles; ++i)
    out[i] = tiles == 1 ? 0 : static_cast<int64_t>(std::llround(double(i) * double(size - tile) / double(tiles - 1)));
  return out;
}

namespace {

std::vector<float> gaussian_weights(const Shape& o) {
  auto axis = [](int64_t n) {
    std::vector<double> g(n);
    const double sigma = std::max(double(n) / 8, 1e-3), c = (double(n) - 1) / 2;
    for (int64_t i = 0; i < n; ++i) g[i] = std::exp(-0.5 * (i - c) * (i - c) / (sigma * sigma));
    return g;
  };
  const auto gz = axis(o.d), gy = axis(o.h), gx = axis(o.w);
  std::vector<float> w(o.spatial());
  for (int64_t z = 0; z < o.d; ++z)
    for (int64_t y = 0; y < o.h; ++y)
      for (int64_t x = 0; x < o.w; ++x)
        // A floor keeps the tile's corners from vanishing where only one tile covers them.
        w[(z * o.h + y) * o.w + x] = static_cast<float>(std::max(gz[z] * gy[y] * gx[x], 1e-3));
  return w;
}

}  // namespace

std::vector<float> predict_logits(UNet& model, const float* image, std::array<int64_t, 3> dims,
                                  const WindowSpec& spec) {
  if (!(spec.overlap >= 0 && spec.overlap < 1))
    throw std::invalid_argument("sliding window: overlap " + std::to_string(spec.overlap) + " outside [0, 1)");
  const Shape in = model.input_shape(), out = model.output_shape();
  const int64_t C = in.c, K = out.c, S = dims[0] * dims[1] * dims[2];
  // Context a "valid" network needs on each side of its output tile.
  const int64_t mz = (in.d - out.d) / 2, my = (in.h - out.h) / 2, mx = (in.w - out.w) / 2;
  const auto oz = tile_origins(dims[0], out.d, spec.overlap), oy = tile_origins(dims[1], out.h, spec.overlap),
             ox = tile_origins(dims[2], out.w, spec.overlap);
  struct Tile {
    int64_t z, y, x;
    int flips;  // bit a: flip spatial axis a (0 = W, 1 = H, 2 = D)
  };
  const int flip_count = spec.mirror ? (in.dims == 3 ? 8 : 4) : 1;
  std::vector<Tile> tiles;
  for (int64_t z : oz)
    for (int64_t y : oy)
      for (int64_t x : ox)
        for (int f = 0; f < flip_count; ++f) tiles.push_back({z, y, x, f});

  const std::vector<float> weight = gaussian_weights(out);
  std::vector<float> sum(static_cast<size_t>(K * S), 0.f), total(static_cast<size_t>(S), 0.f);
  std::vector<float> batch(static_cast<size_t>(in.count()));
  // The coordinate along an axis of size n read for tile position i, flipped or not.
  auto at = [](int64_t i, int64_t n, bool flip) { return flip ? n - 1 - i : i; };
  for (size_t first = 0; first < tiles.size(); first += static_cast<size_t>(in.n)) {
    const size_t count = std::min(tiles.size() - first, static_cast<size_t>(in.n));
    std::fill(batch.begin(), batch.end(), 0.f);
    for (size_t t = 0; t < count; ++t) {
      const Tile& tile = tiles[first + t];
      float* dst = batch.data() + t * in.sample();
      for (int64_t c = 0; c < C; ++c)
        for (int64_t z = 0; z < in.d; ++z)
          for (int64_t y = 0; y < in.h; ++y)
            for (int64_t x = 0; x < in.w; ++x) {
              const int64_t iz = tile.z - mz + at(z, in.d, tile.flips & 4), iy = tile.y - my + at(y, in.h, tile.flips & 2),
                            ix = tile.x - mx + at(x, in.w, tile.flips & 1);
              if (iz < 0 || iy < 0 || ix < 0 || iz >= dims[0] || iy >= dims[1] || ix >= dims[2]) continue;
              dst[((c * in.d + z) * in.h + y) * in.w + x] = image[((c * dims[0] + iz) * dims[1] + iy) * dims[2] + ix];
            }
    }
    model.forward(model.stage_input(batch.data()), false);
    const Tensor logits = model.logits_on_host();
    for (size_t t = 0; t < count; ++t) {
      const Tile& tile = tiles[first + t];
      const float* src = logits.sample(static_cast<int64_t>(t));
      for (int64_t z = 0; z < out.d; ++z)
        for (int64_t y = 0; y < out.h; ++y)
          for (int64_t x = 0; x < out.w; ++x) {
            const int64_t iz = tile.z + at(z, out.d, tile.flips & 4), iy = tile.y + at(y, out.h, tile.flips & 2),
                          ix = tile.x + at(x, out.w, tile.flips & 1);
            if (iz >= dims[0] || iy >= dims[1] || ix >= dims[2]) continue;
            const int64_t o = (z * out.h + y) * out.w + x, i = (iz * dims[1] + iy) * dims[2] + ix;
            const float w = weight[o];
            total[i] += w;
            for (int64_t k = 0; k < K; ++k) sum[k * S + i] += w * src[k * out.spatial() + o];
          }
    }
  }
  for (int64_t k = 0; k < K; ++k)
    for (int64_t i = 0; i < S; ++i) sum[k * S + i] /= total[i];
  return sum;
}

}  // namespace unet
