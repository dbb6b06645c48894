// The convolution of conv.h on the CPU through oneDNN, for one layer's shapes
// and strides. Its primitives (forward, data gradient, weight gradient) are
// made once, when the layer is planned, in the memory layouts that oneDNN's
// fastest kernels for this CPU ask for (blocked channels): oneDNN picks those
// kernels by the instruction sets the CPU reports (AVX2, AVX-512, AVX-512 BF16,
// AMX), never by its model. The engine's tensors keep their layout (NCDHW,
// fp32, channel slices of concatenation buffers): each call reorders its
// operands into the kernels' layout and its results back, in the workspace the
// caller passes, oneDNN's scratchpad included, so that nothing is allocated
// per call. The im2col + OpenBLAS convolution (conv.h) stays as the reference
// the tests compare this one against.
//
// `type` is what the kernels multiply: f32, or bf16, where x, w and dy are
// rounded to bf16 (to nearest even, as kernels/half.h rounds), the products
// are summed in fp32, and y and dx are rounded to bf16 on their way out
// (stored as fp32), as the GPU's mixed precision stores them; the weight and
// bias gradients stay fp32.
//
// Contract: that of conv_forward and conv_backward (conv.h). The tensors'
// batch strides must be those the layer was planned with (ConvStrides).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "kernels/base/common.h"
#include "kernels/base/tensor.h"
#include "kernels/conv.h"

namespace unet {

class ConvDnnl {
 public:
  // Throws std::runtime_error naming the layer where oneDNN has no kernel for
  // it on this CPU (bf16 on a CPU without AVX-512, for one).
  ConvDnnl(const Shape& in, int64_t out_channels, const ConvSpec& spec, ConvStrides strides = {},
           DType type = DType::f32);
  ~ConvDnnl();
  ConvDnnl(const ConvDnnl&) = delete;
  ConvDnnl& operator=(const ConvDnnl&) = delete;

  size_t workspace_bytes() const;
  void forward(const Tensor& x, const float* w, const float* bias, const Tensor& y, void* workspace) const;
  void backward(const Tensor& x, const float* w, const Tensor& dy, const Tensor& dx, float* dw, float* dbias,
                GradMode mode, void* workspace) const;
  // The kernels oneDNN chose for the forward pass, the data gradient and the
  // weight gradient (jit:avx512_core, brgconv:avx512_core_amx_bf16, ...): for
  // `unet bench` and the tests.
  std::vector<std::string> kernels() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether the CPU's convolutions may run in bf16 on this machine: oneDNN has
// bf16 kernels where the CPU has AVX-512 (native with AVX-512 BF16 or AMX).
bool cpu_has_bf16_convolutions();

// The oneDNN library loaded, "2.6.3".
std::string onednn_version();

}  // namespace unet
