// CUDA launchers for dropout; the mask is dropout.h's dropout_factor of the
// element's logical index, so the GPU drops exactly what the CPU drops.
#include <stdexcept>
#include <string>

#include "kernels/base/cuda_check.h"
#include "kernels/base/cuda_launch.h"
#include "kernels/dropout.h"

namespace unet {
namespace {

template <class T>
__global__ void mask_kernel(const T* in, T* out, int64_t in_stride, int64_t out_stride, int64_t per_sample,
                            int64_t total, DropoutSpec spec) {
  UNET_GRID_LOOP(i, total) {
    const int64_t n = i / per_sample, r = i % per_sample;
    const uint64_t index = static_cast<uint64_t>((spec.first_sample + n) * per_sample + r);
    store(out + n * out_stride + r, load(in + n * in_stride + r) * dropout_factor(spec, index));
  }
}

void apply(const char* op, const Tensor& in, const Tensor& out, const DropoutSpec& spec, Stream stream) {
  expect_shape(op, "output", out.shape, in.shape);
  expect_dtype(op, "output", out, in.dtype);
  if (!(spec.rate >= 0.f && spec.rate < 1.f))
    throw std::invalid_argument(std::string(op) + ": rate " + std::to_string(spec.rate) + " outside [0, 1)");
  const int64_t total = in.shape.count();
  if (total == 0) return;
  UNET_DISPATCH(in.dtype, T,
                mask_kernel<<<blocks_for(total), kThreads, 0, stream>>>(in.as<T>(), out.as<T>(), in.batch_stride,
                                                                        out.batch_stride, in.shape.sample(), total,
                                                                        spec));
  UNET_CUDA_CHECK_LAUNCH();
}

}  // namespace

void dropout_forward_cuda(const Tensor& x, const Tensor& y, const DropoutSpec& spec, Stream stream) {
  apply("dropout_forward_cuda", x, y, spec, stream);
}

void dropout_backward_cuda(const Tensor& dy, const Tensor& dx, const DropoutSpec& spec, Stream stream) {
  apply("dropout_backward_cuda", dy, dx, spec, stream);
}

}  // namespace unet
