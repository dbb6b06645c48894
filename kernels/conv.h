// Convolution, k x k (x k), stride 1, "same" (zero padding k / 2, k odd) or
// "valid" (no padding) output, with bias: y = conv(x, w) + bias. The 1 x 1 head
// is the case k = 1. Weights are [Co, Ci, kd, kh, kw] (kd = 1 in 2D), the
// layout of PyTorch and cuDNN.
//
// The CPU version lowers the convolution to GEMMs through OpenBLAS (im2col):
// chunks of output rows at a time so that the column buffer stays bounded for
// 3D volumes; im2col and col2im run on OpenMP threads. The workspace the caller
// passes holds the column buffer (conv_workspace_floats).
//
// Memory contract
//   conv_forward:  reads x, w, bias (may be null); overwrites y. y may be a
//                  channel slice of a larger buffer (zero-copy concatenation).
//   conv_backward: reads x, w, dy; writes dx per `mode` (overwrite or
//                  accumulate; skipped when dx.data is null, as for the input
//                  image); accumulates (+=) into dw and dbias (dbias may be null).
#pragma once

#include <string>

#include "kernels/base/tensor.h"
#include "kernels/base/common.h"

namespace unet {

enum class Padding { same, valid };

struct ConvSpec {
  int kernel = 3;
  Padding padding = Padding::same;
};

// The output shape for input `in` and `out_channels`; throws std::invalid_argument
// for an even kernel with "same" padding or an input smaller than the kernel.
Shape conv_output_shape(const Shape& in, int64_t out_channels, const ConvSpec& spec);

// Floats of workspace conv_forward and conv_backward need for this input.
int64_t conv_workspace_floats(const Shape& in, int64_t out_channels, const ConvSpec& spec);

void conv_forward(const Tensor& x, const float* w, const float* bias, const Tensor& y, const ConvSpec& spec,
                  float* workspace);
void conv_backward(const Tensor& x, const float* w, const Tensor& dy, const Tensor& dx, float* dw, float* dbias,
                   const ConvSpec& spec, GradMode mode, float* workspace);

// Multiply-adds of one forward pass (backward is twice this): for FLOP counters.
int64_t conv_macs(const Shape& in, int64_t out_channels, const ConvSpec& spec);

// The batch strides a layer's tensors will have (0: packed, sample() apart):
// a channel slice of a concatenation buffer lies further apart. The forward
// output y and the output gradient dy may be such slices; x too, and dx is
// always packed.
struct ConvStrides {
  int64_t x = 0, y = 0, dy = 0;
};

// Names a layer's shapes and strides (0 read as packed): where a plan for it
// is kept (the CUDA backend's per-layer plans, cuDNN's algorithm cache).
std::string conv_key(const Shape& in, int64_t out_channels, const ConvSpec& spec, ConvStrides strides);

#ifdef UNET_CUDA
}  // namespace unet
#include <memory>
struct cudnnContext;  // cudnnHandle_t without the cuDNN headers
namespace unet {

// The same contract through cuDNN, for one layer's shapes and strides. The
// algorithms are ranked once per shape and strides and cached for the process:
// cuDNN's heuristics, or with `search` a timed search; deterministic ones
// first, so runs repeat bit for bit, those within 1 GiB of workspace before the
// others (conv_choice.h); each validated when planned, and the next taken
// where cuDNN declines one when it runs (an error names the layer, the pass
// and what was tried). `tf32` lets Ampere and later use TF32 tensor
// cores (otherwise strict FP32). `type`: the element type of x, y, w and their
// gradients; bf16 and fp16 (mixed precision) accumulate in fp32 on tensor
// cores, the bias and dbias stay fp32, and dw is then overwritten, not
// accumulated (the 16-bit copy the caller adds into its fp32 gradient). The
// caller passes a workspace of workspace_bytes(); nothing is allocated per call.
class ConvCudnn {
 public:
  ConvCudnn(cudnnContext* handle, const Shape& in, int64_t out_channels, const ConvSpec& spec, bool tf32 = false,
            bool search = false, ConvStrides strides = {}, DType type = DType::f32);
  ~ConvCudnn();
  ConvCudnn(const ConvCudnn&) = delete;
  ConvCudnn& operator=(const ConvCudnn&) = delete;

  size_t workspace_bytes() const;
  void forward(const Tensor& x, const void* w, const float* bias, const Tensor& y, void* workspace,
               Stream stream) const;
  void backward(const Tensor& x, const void* w, const Tensor& dy, const Tensor& dx, void* dw, float* dbias,
                GradMode mode, void* workspace, Stream stream) const;
  // y = ReLU(conv(x) + bias) in one call (cudnnConvolutionBiasActivationForward)
  // with the forward algorithm chosen for the layer. Returns false, having done
  // nothing, where cuDNN declines it for this layer (any bad-parameter or
  // not-supported status, decided by the first call outside a CUDA Graph
  // capture and not asked again: the caller runs the convolution and
  // bias + ReLU apart), inside a capture before that first call, and for 16-bit types.
  bool forward_bias_relu(const Tensor& x, const void* w, const float* bias, const Tensor& y, void* workspace,
                         Stream stream) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};
#endif

}  // namespace unet
