// Channel concatenation and centre crop: how a U-Net's skip connection reaches
// the decoder.
//
// Concatenation is zero-copy. The decoder's input buffer holds [skip, up]
// along channels; Tensor::channels() gives a view of each half, and the
// producers write straight into them: in a "same" U-Net the encoder's last
// convolution writes its output into the skip half, the up-convolution into the
// up half. Backward needs nothing either: the decoder's first convolution
// writes the gradient of the whole buffer, and each producer reads its half.
//
// A "valid" U-Net's encoder output is larger than the decoder's, so it is
// centre-cropped into the skip half (crop_forward) and the gradient is padded
// back with zeros (crop_backward). The crop starts at (in - out) / 2 in each
// spatial dimension.
//
// Memory contract
//   crop_forward:  reads x; overwrites y (smaller or equal spatially; same N, C).
//   crop_backward: reads dy; writes dx per `mode` (overwrite zeroes the border).
#pragma once

#include "kernels/base/tensor.h"
#include "kernels/base/common.h"

namespace unet {

void crop_forward(const Tensor& x, const Tensor& y);
void crop_backward(const Tensor& dy, const Tensor& dx, GradMode mode);

#ifdef UNET_CUDA
// The same contract on device pointers.
void crop_forward_cuda(const Tensor& x, const Tensor& y, Stream stream);
void crop_backward_cuda(const Tensor& dy, const Tensor& dx, GradMode mode, Stream stream);
#endif

}  // namespace unet
