#include "engine/evaluate/render.h"

#include <algorithm>
#include <cmath>

namespace unet {
namespace {

Volume rgb(int64_t h, int64_t w) {
  Volume v;
  v.c = 3, v.h = h, v.w = w, v.d = 1, v.dims = 2;
  v.full_scale = 255;
  v.datatype = "uint8";
  v.voxels.assign(static_cast<size_t>(3 * h * w), 0.f);
  return v;
}

void put(Volume& v, int64_t y, int64_t x, float r, float g, float b) {
  if (y < 0 || x < 0 || y >= v.h || x >= v.w) return;
  const int64_t plane = v.h * v.w, i = y * v.w + x;
  v.voxels[i] = r, v.voxels[plane + i] = g, v.voxels[2 * plane + i] = b;
}

bool boundary(const int32_t* m, int64_t h, int64_t w, int64_t y, int64_t x) {
  const int32_t c = m[y * w + x];
  return (y > 0 && m[(y - 1) * w + x] != c) || (y + 1 < h && m[(y + 1) * w + x] != c) ||
         (x > 0 && m[y * w + x - 1] != c) || (x + 1 < w && m[y * w + x + 1] != c);
}

}  // namespace

Volume overlay_rgb(const float* image, int64_t h, int64_t w, const int32_t* label, const int32_t* prediction) {
  Volume v = rgb(h, w);
  const auto [lo, hi] = std::minmax_element(image, image + h * w);
  const float range = std::max(*hi - *lo, 1e-8f);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const float g = std::isfinite(image[y * w + x]) ? 255.f * (image[y * w + x] - *lo) / range : 0.f;
      const bool lb = label && boundary(label, h, w, y, x), pb = prediction && boundary(prediction, h, w, y, x);
      if (lb && pb)
        put(v, y, x, 255, 255, 0);
      else if (lb)
        put(v, y, x, 0, 255, 0);
      else if (pb)
        put(v, y, x, 255, 0, 0);
      else
        put(v, y, x, g, g, g);
    }
  return v;
}

Volume resize_rgb(const Volume& in, int64_t h, int64_t w) {
  Volume v = rgb(h, w);
  const int64_t plane = in.h * in.w;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const int64_t sy = std::min(in.h - 1, y * in.h / h), sx = std::min(in.w - 1, x * in.w / w), i = sy * in.w + sx;
      put(v, y, x, in.voxels[i], in.voxels[plane + i], in.voxels[2 * plane + i]);
    }
  return v;
}

Volume learning_curve(const std::vector<CurvePoint>& loss, const std::vector<CurvePoint>& dice, int64_t width,
                      int64_t height) {
  Volume v = rgb(height, width);
  std::fill(v.voxels.begin(), v.voxels.end(), 255.f);
  const int64_t m = 20;  // margin
  const int64_t pw = width - 2 * m, ph = height - 2 * m;
  for (int t = 0; t <= 10; ++t) {  // the grid: tenths of each axis
    const int64_t y = m + ph * t / 10, x = m + pw * t / 10;
    const float shade = t == 0 || t == 10 ? 120.f : 225.f;
    for (int64_t i = m; i <= m + pw; ++i) put(v, y, i, shade, shade, shade);
    for (int64_t i = m; i <= m + ph; ++i) put(v, i, x, shade, shade, shade);
  }
  double last = 1;
  for (const auto* series : {&loss, &dice})
    for (const CurvePoint& p : *series) last = std::max(last, p.step);
  double top = 1e-12;
  for (const CurvePoint& p : loss)
    if (std::isfinite(p.value)) top = std::max(top, p.value);
  auto draw = [&](const std::vector<CurvePoint>& s, double scale, float r, float g, float b) {
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const double x0 = m + pw * s[i].step / last, x1 = m + pw * s[i + 1].step / last;
      const double y0 = m + ph * (1 - s[i].value / scale), y1 = m + ph * (1 - s[i + 1].value / scale);
      const int n = static_cast<int>(std::max(std::fabs(x1 - x0), std::fabs(y1 - y0))) + 1;
      for (int k = 0; k <= n; ++k) {
        const double t = double(k) / n;
        const int64_t x = std::llround(x0 + t * (x1 - x0)), y = std::llround(y0 + t * (y1 - y0));
        for (int64_t dy = 0; dy < 2; ++dy) put(v, y + dy, x, r, g, b);
      }
    }
  };
  draw(loss, top, 31, 119, 180);
  draw(dice, 1.0, 255, 127, 14);
  return v;
}

}  // namespace unet
