// The trained U-Net as an ONNX model (opset 17), built with the ONNX project's
// own protobuf classes (Debian libonnx-dev) and checked by its checker before
// anything is written.
//
// The graph is forward(training = false) node for node: Conv (+ BatchNormalization
// with the running statistics, or InstanceNormalization) + Relu/LeakyRelu per
// convolution, MaxPool 2x2(x2), ConvTranspose 2x2(x2), Slice for the centre crop
// of a "valid" U-Net, Concat [skip, up], the 1x1 head. Dropout is absent
// (inference). Every parameter is an initializer under its param_table() name,
// the names of the safetensors file.
//
//   input   "image"          N x C x [D x] H x W, normalized as the weights file says
//   outputs "logits"         N x K x [D x] H x W (K = 1 for a sigmoid head)
//           "probabilities"  Sigmoid or Softmax (over the channel axis) of the logits
//
// A "same" U-Net takes any batch and any size that divides by 2^depth (the
// dimensions are named: batch, depth, height, width); a "valid" U-Net's crops
// depend on the size, so its spatial size is fixed to the one the model was
// planned for. The model's metadata_props carry the weights file's metadata
// (configuration, normalization statistics, patch size).
#pragma once

#include <map>
#include <string>

#include "engine/model/unet_model.h"

namespace unet {

constexpr int kOnnxOpset = 17;

// The serialized model. `model` must have been planned (plan()): a "valid"
// U-Net's export uses that size.
std::string onnx_model_bytes(const UNet& model, const std::map<std::string, std::string>& metadata = {});
// Writes it atomically.
void export_onnx(const std::string& path, const UNet& model, const std::map<std::string, std::string>& metadata = {});

}  // namespace unet
