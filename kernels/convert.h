// Conversion between element types (fp32, bf16, fp16; half.h's rounding):
// the edges of mixed precision. The input image and the loss gradient enter the
// 16-bit activations through it, the logits leave them for the fp32 loss, the
// fp32 master weights go to the 16-bit copies cuDNN and cuBLAS multiply, and
// the 16-bit weight gradients they return come back into the fp32 gradient.
//
// Memory contract
//   convert: reads count elements of src (type `from`); overwrites dst (type
//            `to`) with them, or with mode accumulate adds them into it (dst[i]
//            = round(dst[i] + src[i]) in fp32 math). src and dst do not overlap.
#pragma once

#include <cstdint>

#include "kernels/base/tensor.h"
#include "kernels/base/common.h"

namespace unet {

void convert(const void* src, DType from, void* dst, DType to, int64_t count, GradMode mode = GradMode::overwrite);

#ifdef UNET_CUDA
void convert_cuda(const void* src, DType from, void* dst, DType to, int64_t count, GradMode mode, Stream stream);
#endif

}  // namespace unet
