// CUDA launchers for max pooling (maxpool.h): forward one thread per output,
// backward one thread per input element gathering through the saved argmax (no
// atomics). The window order is window_offset's, shared with the CPU.
#include "kernels/base/cuda_check.h"
#include "kernels/base/cuda_launch.h"
#include "kernels/maxpool.h"

namespace unet {
namespace {

struct Planes {
  int64_t d, h, w;     // input plane
  int64_t od, oh, ow;  // output plane
  int64_t x_stride, y_stride, channels;
  PoolWindow win;
};

Planes planes(const Tensor& in, const Tensor& out, PoolWindow win) {
  const Shape& a = in.shape;
  const Shape& b = out.shape;
  return {a.d, a.h, a.w, b.d, b.h, b.w, in.batch_stride, out.batch_stride, a.c, window_for(a, win)};
}

template <class T>
__global__ void forward_kernel(const T* x, T* y, uint8_t* argmax, Planes p, int64_t total) {
  const int64_t out_plane = p.od * p.oh * p.ow, in_plane = p.d * p.h * p.w;
  const int window = p.win.taps();
  UNET_GRID_LOOP(i, total) {
    const int64_t nc = i / out_plane, o = i % out_plane, n = nc / p.channels, c = nc % p.channels;
    const int64_t oz = o / (p.oh * p.ow), oy = o / p.ow % p.oh, ox = o % p.ow;
    const T* src = x + n * p.x_stride + c * in_plane;
    float best = load(src + window_offset(oz, oy, ox, 0, p.win, p.h, p.w));
    uint8_t won = 0;
    for (int k = 1; k < window; ++k) {
      const float v = load(src + window_offset(oz, oy, ox, k, p.win, p.h, p.w));
      if (v > best) best = v, won = static_cast<uint8_t>(k);  // strict: ties go to the first, as on the CPU
    }
    store(y + n * p.y_stride + c * out_plane + o, best);
    argmax[i] = won;
  }
}

template <class T>
__global__ void backward_kernel(const T* dy, const uint8_t* argmax, T* dx, Planes p, int64_t total,
                                bool accumulate) {
  const int64_t out_plane = p.od * p.oh * p.ow, in_plane = p.d * p.h * p.w;
  UNET_GRID_LOOP(i, total) {
    const int64_t nc = i / in_plane, e = i % in_plane, n = nc / p.channels, c = nc % p.channels;
    const int64_t z = e / (p.h * p.w), y = e / p.w % p.h, x = e % p.w;
    const int64_t oz = z / p.win.d, oy = y / p.win.h, ox = x / p.win.w;
    float v = 0.f;
    if (oz < p.od && oy < p.oh && ox < p.ow) {  // else a dropped remainder: no gradient
      const int k = (int(z % p.win.d) * p.win.h + int(y % p.win.h)) * p.win.w + int(x % p.win.w);
      const int64_t o = (oz * p.oh + oy) * p.ow + ox;
      if (argmax[nc * out_plane + o] == k) v = load(dy + n * p.y_stride + c * out_plane + o);
    }
    T* d = dx + n * p.x_stride + c * in_plane + e;
    store(d, accumulate ? load(d) + v : v);
  }
}

}  // namespace

void maxpool_forward_cuda(const Tensor& x, const Tensor& y, uint8_t* argmax, Stream stream, PoolWindow win) {
  expect_shape("maxpool_forward_cuda", "y", y.shape, maxpool_output_shape(x.shape, win));
  expect_dtype("maxpool_forward_cuda", "y", y, x.dtype);
  const int64_t total = y.shape.count();
  UNET_DISPATCH(x.dtype, T,
                forward_kernel<<<blocks_for(total), kThreads, 0, stream>>>(x.as<T>(), y.as<T>(), argmax, planes(x, y, win),
                                                                           total));
  UNET_CUDA_CHECK_LAUNCH();
}

void maxpool_backward_cuda(const Tensor& dy, const uint8_t* argmax, const Tensor& dx, GradMode mode, Stream stream,
                           PoolWindow win) {
  expect_shape("maxpool_backward_cuda", "dy", dy.shape, maxpool_output_shape(dx.shape, win));
  expect_dtype("maxpool_backward_cuda", "dx", dx, dy.dtype);
  const int64_t total = dx.shape.count();
  UNET_DISPATCH(dy.dtype, T,
                backward_kernel<<<blocks_for(total), kThreads, 0, stream>>>(dy.as<T>(), argmax, dx.as<T>(),
                                                                            planes(dx, dy, win), total,
                                                                            mode == GradMode::accumulate));
  UNET_CUDA_CHECK_LAUNCH();
}

}  // namespace unet
