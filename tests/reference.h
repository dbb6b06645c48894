// Naive double-precision references (convolution, up-convolution) for tests: direct loops over
// every output and tap, no lowering, obviously right.
#pragma once

#include <vector>

#include "kernels/base/tensor.h"
#include "kernels/conv.h"
#include "kernels/upconv.h"

namespace unet::test {

struct ConvRef {
  Shape in, out;
  int64_t k, kd, pad, pad_d;

  ConvRef(const Shape& x, int64_t co, const ConvSpec& spec)
      : in(x), out(conv_output_shape(x, co, spec)), k(spec.kernel), kd(x.dims == 3 ? spec.kernel : 1),
        pad(spec.padding == Padding::same ? spec.kernel / 2 : 0), pad_d(x.dims == 3 ? pad : 0) {}

  int64_t xi(int64_t n, int64_t c, int64_t z, int64_t y, int64_t x) const {
    return (((n * in.c + c) * in.d + z) * in.h + y) * in.w + x;
  }
  int64_t yi(int64_t n, int64_t c, int64_t z, int64_t y, int64_t x) const {
    return (((n * out.c + c) * out.d + z) * out.h + y) * out.w + x;
  }
  int64_t wi(int64_t o, int64_t i, int64_t a, int64_t b, int64_t c) const {
    return (((o * in.c + i) * kd + a) * k + b) * k + c;
  }

  // Calls f(output index, input index, weight index) for every valid tap.
  template <class F>
  void each(F f) const {
    for (int64_t n = 0; n < out.n; ++n)
      for (int64_t o = 0; o < out.c; ++o)
        for (int64_t z = 0; z < out.d; ++z)
          for (int64_t y = 0; y < out.h; ++y)
            for (int64_t x = 0; x < out.w; ++x)
              for (int64_t i = 0; i < in.c; ++i)
                for (int64_t a = 0; a < kd; ++a)
                  for (int64_t b = 0; b < k; ++b)
                    for (int64_t c = 0; c < k; ++c) {
                      const int64_t iz = z + a - pad_d, iy = y + b - pad, ix = x + c - pad;
                      if (iz < 0 || iz >= in.d || iy < 0 || iy >= in.h || ix < 0 || ix >= in.w) continue;
                      f(yi(n, o, z, y, x), xi(n, i, iz, iy, ix), wi(o, i, a, b, c));
                    }
  }

  std::vector<double> forward(const std::vector<float>& x, const std::vector<float>& w,
                              const std::vector<float>& bias) const {
    std::vector<double> y(out.count());
    for (int64_t i = 0; i < out.count(); ++i) y[i] = bias[(i / out.spatial()) % out.c];
    each([&](int64_t yo, int64_t xo, int64_t wo) { y[yo] += double(x[xo]) * w[wo]; });
    return y;
  }

  void backward(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& dy,
                std::vector<double>& dx, std::vector<double>& dw) const {
    dx.assign(in.count(), 0.0);
    dw.assign(w.size(), 0.0);
    each([&](int64_t yo, int64_t xo, int64_t wo) {
      dx[xo] += double(dy[yo]) * w[wo];
      dw[wo] += double(dy[yo]) * x[xo];
    });
  }
};

// Direct definition: f(output index, input index, weight index) for every
// output element's single tap and every input channel.
template <class F>
void upconv_each_tap(const Shape& in, int64_t co, F f, PoolWindow window = {}) {
  const Shape out = upconv_output_shape(in, co, window);
  const PoolWindow win = window_for(in, window);
  for (int64_t n = 0; n < out.n; ++n)
    for (int64_t o = 0; o < co; ++o)
      for (int64_t z = 0; z < out.d; ++z)
        for (int64_t yy = 0; yy < out.h; ++yy)
          for (int64_t xx = 0; xx < out.w; ++xx) {
            const int64_t tap = ((z % win.d) * win.h + yy % win.h) * win.w + xx % win.w;
            for (int64_t i = 0; i < in.c; ++i)
              f((((n * co + o) * out.d + z) * out.h + yy) * out.w + xx,
                (((n * in.c + i) * in.d + z / win.d) * in.h + yy / win.h) * in.w + xx / win.w,
                (i * co + o) * win.taps() + tap);
          }
}

inline std::vector<double> upconv_reference(const Shape& in, int64_t co, const std::vector<float>& x,
                                            const std::vector<float>& w, const std::vector<float>& b,
                                            PoolWindow window = {}) {
  const Shape out = upconv_output_shape(in, co, window);
  std::vector<double> y(out.count());
  for (int64_t i = 0; i < out.count(); ++i) y[i] = b[(i / out.spatial()) % co];
  upconv_each_tap(in, co, [&](int64_t yo, int64_t xo, int64_t wo) { y[yo] += double(x[xo]) * w[wo]; }, window);
  return y;
}

}  // namespace unet::test
