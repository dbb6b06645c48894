// unet export: a trained model in a format other tools run. --onnx writes the
// inference graph as ONNX (engine/storage/onnx_export.h), for onnxruntime, TensorRT or
// any ONNX consumer; the weights file's metadata rides along.
#include <cstdio>
#include <memory>

#include "engine/storage/checkpoint.h"
#include "engine/storage/onnx_export.h"
#include "tools/cli/commands.h"
#include "tools/cli/model_options.h"

namespace unet {
namespace {

struct ExportCli {
  std::string weights, onnx, size;
};

}  // namespace

void add_export_command(CLI::App& app) {
  auto o = std::make_shared<ExportCli>();
  CLI::App* cmd = app.add_subcommand("export", "Write a trained model as ONNX");
  cmd->add_option("--weights,-w", o->weights, "A weights file from unet train (best.safetensors)")->required();
  cmd->add_option("--onnx", o->onnx, "The ONNX file to write (opset 17)")->required();
  cmd->add_option("--size", o->size,
                  "Input size W x H[ x D] of a \"valid\" U-Net (default: the training patch); "
                  "a \"same\" U-Net takes any size that divides by 2^depth");
  cmd->callback([o] {
    const Safetensors file = read_safetensors(o->weights);
    const std::unique_ptr<UNet> model = open_model(file, o->weights);
    const UNetConfig& config = model->config();
    // A "same" U-Net is planned at its smallest size only to walk its layers; a
    // "valid" one's crops depend on the size, which the graph then fixes.
    std::vector<int64_t> s(config.dims, int64_t(1) << config.depth);
    if (config.padding == Padding::valid)
      s = model_input_size(o->size, file.metadata, o->weights, config.dims);
    else if (!o->size.empty())
      throw std::invalid_argument("--size is for \"valid\" U-Nets; this \"same\" U-Net's ONNX graph takes any size");
    model->plan(batch_shape(1, config.in_channels, s));
    export_onnx(o->onnx, *model, file.metadata);
    std::printf("%s -> %s (ONNX opset %d, %lld parameters, input \"image\", outputs \"logits\" and \"probabilities\")\n",
                o->weights.c_str(), o->onnx.c_str(), kOnnxOpset, static_cast<long long>(model->parameter_count()));
  });
}

}  // namespace unet
