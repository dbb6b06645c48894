// Max pooling, window = stride (pool_window.h: 2 x 2 x 2, or 1 along an axis
// left unpooled; 2D pools height and width). A trailing row, column or slice
// that does not fill a window is dropped (floor), as in PyTorch; its gradient
// is zero.
//
// Forward keeps, for every output, which of the window's elements won
// (argmax: 0..taps-1 in window_offset's order; ties go to the first).
// Backward is a gather through it: each input element takes dy of its window's
// output if it is that window's winner, else zero. No atomics.
//
// Memory contract
//   maxpool_forward:  reads x; overwrites y and argmax (y.shape.count() bytes,
//                     contiguous).
//   maxpool_backward: reads dy, argmax; writes dx per `mode` (overwrite, or
//                     accumulate: the pooled tensor is also a skip connection).
#pragma once

#include "kernels/base/tensor.h"
#include "kernels/base/common.h"
#include "kernels/pool_window.h"

namespace unet {

Shape maxpool_output_shape(const Shape& in, PoolWindow win = {});  // throws if an output dimension is 0

void maxpool_forward(const Tensor& x, const Tensor& y, uint8_t* argmax, PoolWindow win = {});
void maxpool_backward(const Tensor& dy, const uint8_t* argmax, const Tensor& dx, GradMode mode, PoolWindow win = {});

#ifdef UNET_CUDA
// The same contract on device pointers.
void maxpool_forward_cuda(const Tensor& x, const Tensor& y, uint8_t* argmax, Stream stream, PoolWindow win = {});
void maxpool_backward_cuda(const Tensor& dy, const uint8_t* argmax, const Tensor& dx, GradMode mode, Stream stream,
                           PoolWindow win = {});
#endif

}  // namespace unet
