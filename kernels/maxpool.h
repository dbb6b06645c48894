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

#include "engine/tensor.h"
#include "kernels/common.h"

namespace unet {

Shape maxpool_output_shape(const Shape& in);  // throws if an output dimension is 0

void maxpool_forward(const Tensor& x, const Tensor& y, uint8_t* argmax);
void maxpool_backward(const Tensor& dy, const uint8_t* argmax, const Tensor& dx, GradMode mode);

}  // namespace unet
