// The window of a U-Net level's max-pool, which is also the kernel and the
// stride of the up-convolution that undoes it: per axis (depth, height, width)
// 2, or 1 along an axis that is already short or coarse (anisotropic data:
// thick slices pool 2x2x1, as nnU-Net plans them). A 2D tensor's depth is never
// pooled, whatever d says.
#pragma once

#include "kernels/base/common.h"
#include "kernels/base/tensor.h"

namespace unet {

struct PoolWindow {
  int d = 2, h = 2, w = 2;
  UNET_HD int taps() const { return d * h * w; }
  bool operator==(const PoolWindow& o) const { return d == o.d && h == o.h && w == o.w; }
  bool operator!=(const PoolWindow& o) const { return !(*this == o); }
};

// The window as it applies to tensors of this shape: depth 1 in 2D.
inline PoolWindow window_for(const Shape& s, PoolWindow win) {
  if (s.dims != 3) win.d = 1;
  return win;
}

// Where element k of the window at coarse position (z, y, x) lies in the fine
// plane of height h and width w: what a max-pool reads, what an up-convolution
// writes. k runs depth-major, then height, then width (0..taps-1): the order of
// the pooling's argmax and of the up-convolution's weights [Ci, Co, kd, kh, kw].
// Shared by the CPU and the CUDA kernels.
UNET_HD int64_t window_offset(int64_t z, int64_t y, int64_t x, int k, PoolWindow win, int64_t h, int64_t w) {
  const int dx = k % win.w, dy = k / win.w % win.h, dz = k / (win.w * win.h);
  return ((z * win.d + dz) * h + y * win.h + dy) * w + x * win.w + dx;
}

}  // namespace unet
