// unet summary: the layers of a U-Net for an input size, their output shapes,
// parameters and FLOPs, and the memory one training step plans.
#include <cstdio>
#include <memory>

#include "engine/model/unet_model.h"
#include "tools/cli/commands.h"
#include "tools/cli/model_options.h"

namespace unet {

void add_summary_command(CLI::App& app) {
  auto o = std::make_shared<ModelOptions>();
  o->size = "512x512";
  CLI::App* cmd = app.add_subcommand("summary", "Print a U-Net's layers, shapes, parameters, memory and FLOPs");
  add_model_options(*cmd, *o);
  cmd->callback([o] {
    o->resolve();
    UNet model(o->config);
    const Shape input = o->input_shape();
    model.plan(input);
    std::printf("%s\ninput %s (N x C x [D x] H x W)\n\n", o->config.str().c_str(), input.str().c_str());
    std::printf("%-16s %-24s %-22s %12s %12s\n", "layer", "kind", "output", "parameters", "GFLOP fwd");
    for (const LayerInfo& r : model.summary())
      std::printf("%-16s %-24s %-22s %12lld %12.3f\n", r.name.c_str(), r.kind.c_str(), r.output.str().c_str(),
                  static_cast<long long>(r.params), 2 * r.forward_macs / 1e9);
    const double params_mb = double(model.parameter_count()) * 4 / (1 << 20);
    std::printf("\nparameters          %lld (%.1f MiB; gradients and each optimizer moment the same)\n",
                static_cast<long long>(model.parameter_count()), params_mb);
    std::printf("activation arena    %.1f MiB for batch %d (planned once: activations, gradients, workspace)\n",
                double(model.arena_bytes()) / (1 << 20), o->batch);
    std::printf("training step       %.2f GFLOP (forward + backward)\n", model.train_step_flops() / 1e9);
    std::printf("output              %s\n", model.output_shape().str().c_str());
  });
}

}  // namespace unet
