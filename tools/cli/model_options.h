// The command-line options that describe a U-Net (shared by summary, train,
// predict and bench), and the patch size, parsed into a UNetConfig and a Shape.
#pragma once

#include <CLI/CLI.hpp>

#include <map>
#include <memory>
#include <string>

#include "kernels/base/tensor.h"
#include "engine/model/unet_config.h"

namespace unet {

struct ModelOptions {
  UNetConfig config;
  std::string norm = "none", padding = "same", head = "auto", activation = "relu";
  std::string size;  // "W x H" or "W x H x D", as image files state their sizes
  std::string pooling;  // per level "W x H[ x D]" windows joined by commas; empty: 2 along every axis
  int batch = 1;
  // After parsing: fills config's enums and checks it; throws std::invalid_argument.
  void resolve();
  Shape input_shape() const;  // batch x input channels x size
};

void add_model_options(CLI::App& cmd, ModelOptions& o);
// Whether the command line chose any of the architecture or the patch (the
// model options but the data's own: --input-channels, --classes).
bool model_options_given(const CLI::App& cmd);

// "512x512" -> {512, 512}; "128x128x64" -> {128, 128, 64} (W, H[, D]).
std::vector<int64_t> parse_size(const std::string& text);

// The input size for a trained model: `size` when given, else the training
// patch its weights file stores; checked against the model's dimensions.
// Throws std::invalid_argument saying which is missing or wrong.
std::vector<int64_t> model_input_size(const std::string& size, const std::map<std::string, std::string>& metadata,
                                      const std::string& weights_path, int dims);

// batch x channels x the size (W x H[ x D] as parse_size gives it).
Shape batch_shape(int64_t batch, int64_t channels, const std::vector<int64_t>& size);

}  // namespace unet
