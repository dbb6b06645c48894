#include "engine/model/unet_config.h"

#include <stdexcept>

namespace unet {
namespace {

[[noreturn]] void bad(const std::string& field, const std::string& value, const std::string& allowed) {
  throw std::invalid_argument("model configuration: " + field + " = " + value + ", expected " + allowed);
}

}  // namespace

void UNetConfig::validate() const {
  if (dims != 2 && dims != 3) bad("dims", std::to_string(dims), "2 or 3");
  if (depth < 1 || depth > 8) bad("depth", std::to_string(depth), "1 to 8 poolings");
  if (start_filters < 1 || (int64_t(start_filters) << depth) > 65536)
    bad("start filters", std::to_string(start_filters), "at least 1, and start filters x 2^depth at most 65536");
  if (max_filters < 0) bad("max filters", std::to_string(max_filters), "0 (no cap) or a positive cap");
  if (convs_per_level < 1 || convs_per_level > 8) bad("convolutions per level", std::to_string(convs_per_level), "1 to 8");
  if (kernel < 1 || kernel % 2 == 0 || kernel > 7) bad("kernel", std::to_string(kernel), "an odd size from 1 to 7");
  if (!(dropout >= 0.f && dropout < 1.f)) bad("dropout", std::to_string(dropout), "a rate in [0, 1)");
  if (in_channels < 1) bad("input channels", std::to_string(in_channels), "at least 1");
  if (classes < 2) bad("classes", std::to_string(classes), "at least 2 (background included)");
  if (head == Head::sigmoid && classes != 2)
    bad("classes", std::to_string(classes), "2 with the sigmoid head (use softmax for more)");
}

std::string UNetConfig::str() const {
  return std::to_string(dims) + "D U-Net: depth " + std::to_string(depth) + ", start filters " +
         std::to_string(start_filters) + (max_filters > 0 ? " (at most " + std::to_string(max_filters) + ")" : "") + ", " + std::to_string(convs_per_level) + " convs/level " +
         std::to_string(kernel) + "^" + std::to_string(dims) + ", norm " + choice_name(kNormChoices, norm) + ", dropout " +
         std::to_string(dropout).substr(0, 4) + ", padding " + choice_name(kPaddings, padding) +
         ", " + std::to_string(in_channels) + " input channel(s), " + std::to_string(classes) + " classes (" +
         choice_name(kHeads, head) + ")";
}

}  // namespace unet
