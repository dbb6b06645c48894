// Max pooling, window 2 x 2 (x 2 in 3D), stride 2. Odd trailing rows, columns or
// slices are dropped (floor), as in PyTorch; their gradient is zero.
//
// Forward keeps, for every output, which of the window's elements won
// (argmax: 0..3 in 2D, 0..7 in 3D, as (dz * 2 + dy) * 2 + dx; ties go to the
// first). Backward is a gather through it: each input element takes dy of its
// window's output if it is that window's winner, else zero. No atomics.
//
// Memory contract
//   maxpool_forward:  reads x; overwrites y and argmax (y.shape.count() bytes,
//                     contiguous).
//   maxpool_backward: reads dy, argmax; writes dx per `mode` (overwrite, or
//                     accumulate: the pooled tensor is also a skip connection).
#pragma once

#include "kernels/base/tensor.h"
#include "kernels/base/common.h"

namespace unet {

Shape maxpool_output_shape(const Shape& in);  // throws if an output dimension is 0

// Where element k (argmax order) of output (oz, oy, ox)'s window lies in its
// input plane of height h and width w.
UNET_HD int64_t pool_window_offset(int64_t oz, int64_t oy, int64_t ox, int k, int dims, int64_t h, int64_t w) {
  const int64_t depth = dims == 3 ? 2 : 1;
  const int dz = k >> 2, dy = (k >> 1) & 1, dx = k & 1;
  return ((oz * depth + dz) * h + 2 * oy + dy) * w + 2 * ox + dx;
}

void maxpool_forward(const Tensor& x, const Tensor& y, uint8_t* argmax);
void maxpool_backward(const Tensor& dy, const uint8_t* argmax, const Tensor& dx, GradMode mode);

#ifdef UNET_CUDA
// The same contract on device pointers.
void maxpool_forward_cuda(const Tensor& x, const Tensor& y, uint8_t* argmax, Stream stream);
void maxpool_backward_cuda(const Tensor& dy, const uint8_t* argmax, const Tensor& dx, GradMode mode, Stream stream);
#endif

}  // namespace unet
