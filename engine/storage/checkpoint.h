// Model weights as safetensors: every parameter tensor under its param_table()
// name (PyTorch layouts), the batch norms' running statistics as
// "<layer>.norm.running_mean" / "running_var", and in the metadata the model's
// configuration ("unet.config", JSON) beside whatever the caller adds
// (normalization statistics, the training command).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "engine/storage/safetensors.h"
#include "engine/model/unet_model.h"

namespace unet {

std::string config_to_json(const UNetConfig& c);
// Throws FileError naming `where` and the field when the JSON is not a configuration.
UNetConfig config_from_json(const std::string& json, const std::string& where);

// What a weights file carries: everything (a checkpoint to resume), or what
// prediction needs: no deep supervision heads, the configuration without them.
enum class WeightsFor { training, prediction };
Safetensors weights_of(const UNet& model, std::map<std::string, std::string> metadata = {},
                       WeightsFor use = WeightsFor::training);
void save_weights(const std::string& path, const UNet& model, std::map<std::string, std::string> metadata = {},
                  WeightsFor use = WeightsFor::training);

// The configuration stored in a weights file.
UNetConfig stored_config(const Safetensors& file, const std::string& path);
// Copies every parameter (and running statistic) of `model` from the file; a
// missing tensor or a shape that differs is a FileError naming both. Deep
// supervision heads the file lacks (it was written for prediction) keep their
// initialization: fine-tuning from such a file trains them anew.
void load_weights(UNet& model, const Safetensors& file, const std::string& path);
// The model a weights file holds: its configuration and its weights, on the CPU.
std::unique_ptr<UNet> open_model(const Safetensors& file, const std::string& path);

}  // namespace unet
