// CUDA launchers for the centre crop and its gradient (crop.h): one thread per
// element of the smaller tensor; the border of the gradient is zeroed first
// when it is overwritten.
#include <string>

#include "kernels/base/cuda_check.h"
#include "kernels/crop.h"
#include "kernels/base/cuda_launch.h"

namespace unet {
namespace {

struct Geometry {
  int64_t d, h, w;            // the small tensor's spatial size
  int64_t bd, bh, bw;         // the big one's
  int64_t oz, oy, ox;         // where the crop starts
  int64_t small_stride, big_stride, channels;
};

Geometry geometry(const char* op, const Tensor& big, const Tensor& small) {
  const Shape& b = big.shape;
  const Shape& s = small.shape;
  if (b.n != s.n || b.c != s.c || b.dims != s.dims || s.d > b.d || s.h > b.h || s.w > b.w)
    throw std::invalid_argument(std::string(op) + ": cannot crop " + b.str() + " to " + s.str());
  return {s.d, s.h, s.w, b.d, b.h, b.w, (b.d - s.d) / 2, (b.h - s.h) / 2, (b.w - s.w) / 2,
          small.batch_stride, big.batch_stride, s.c};
}

// The big tensor's offset of small element i (n, c, z, y, x flattened).
__device__ int64_t big_index(const Geometry& g, int64_t i, int64_t* small_offset) {
  const int64_t plane = g.d * g.h * g.w;
  const int64_t per_sample = g.channels * plane;
  const int64_t n = i / per_sample, r = i % per_sample, c = r / plane, p = r % plane;
  const int64_t z = p / (g.h * g.w), y = p / g.w % g.h, x = p % g.w;
  *small_offset = n * g.small_stride + r;
  return n * g.big_stride + c * g.bd * g.bh * g.bw + ((z + g.oz) * g.bh + y + g.oy) * g.bw + x + g.ox;
}

template <class T>
__global__ void crop_kernel(const T* big, T* small, Geometry g, int64_t total) {
  UNET_GRID_LOOP(i, total) {
    int64_t s;
    const int64_t b = big_index(g, i, &s);
    small[s] = big[b];
  }
}

template <class T>
__global__ void uncrop_kernel(const T* small, T* big, Geometry g, int64_t total) {
  UNET_GRID_LOOP(i, total) {
    int64_t s;
    const int64_t b = big_index(g, i, &s);
    store(big + b, load(big + b) + load(small + s));
  }
}

template <class T>
__global__ void zero_kernel(T* x, int64_t per_sample, int64_t stride, int64_t total) {
  UNET_GRID_LOOP(i, total) store(x + i / per_sample * stride + i % per_sample, 0.f);
}

}  // namespace

void crop_forward_cuda(const Tensor& x, const Tensor& y, Stream stream) {
  const Geometry g = geometry("crop_forward_cuda", x, y);
  expect_dtype("crop_forward_cuda", "y", y, x.dtype);
  const int64_t total = y.shape.count();
  if (total == 0) return;
  UNET_DISPATCH(x.dtype, T, crop_kernel<<<blocks_for(total), kThreads, 0, stream>>>(x.as<T>(), y.as<T>(), g, total));
  UNET_CUDA_CHECK_LAUNCH();
}

void crop_backward_cuda(const Tensor& dy, const Tensor& dx, GradMode mode, Stream stream) {
  const Geometry g = geometry("crop_backward_cuda", dx, dy);
  expect_dtype("crop_backward_cuda", "dx", dx, dy.dtype);
  if (mode == GradMode::overwrite && dx.shape.count() > 0) {
    UNET_DISPATCH(dx.dtype, T,
                  zero_kernel<<<blocks_for(dx.shape.count()), kThreads, 0, stream>>>(
                      dx.as<T>(), dx.shape.sample(), dx.batch_stride, dx.shape.count()));
    UNET_CUDA_CHECK_LAUNCH();
  }
  const int64_t total = dy.shape.count();
  if (total == 0) return;
  UNET_DISPATCH(dy.dtype, T,
                uncrop_kernel<<<blocks_for(total), kThreads, 0, stream>>>(dy.as<T>(), dx.as<T>(), g, total));
  UNET_CUDA_CHECK_LAUNCH();
}

}  // namespace unet
