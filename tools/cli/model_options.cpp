#include "tools/cli/model_options.h"

#include "tools/cli/choice_option.h"

#include <map>
#include <stdexcept>

namespace unet {

void add_model_options(CLI::App& cmd, ModelOptions& o) {
  UNetConfig& c = o.config;
  cmd.add_option("--dims", c.dims, "2 or 3 spatial dimensions")->check(CLI::IsMember({2, 3}))->capture_default_str();
  cmd.add_option("--depth", c.depth, "Number of poolings")->capture_default_str();
  cmd.add_option("--start-filters,--filters", c.start_filters, "Filters at full resolution, doubling per level")
      ->capture_default_str();
  cmd.add_option("--pooling", o.pooling,
                 "Each level's pooling window, W x H [x D] joined by commas (e.g. 2x2x1,2x2x2,2x2x2: thick slices "
                 "pooled in-plane first); default 2 along every axis");
  cmd.add_option("--max-filters", c.max_filters, "Cap on any level's filters (0: none; nnU-Net: 320 in 3D, 512 in 2D)")
      ->capture_default_str();
  cmd.add_flag("--deep-supervision,!--no-deep-supervision", c.deep_supervision,
               "Deep supervision: a 1x1 head on each upper decoder level, losses weighted 1/2^l (nnU-Net's; on in "
               "plans); the weights for prediction keep the full-resolution head only");
  cmd.add_option("--convs-per-level", c.convs_per_level, "Convolutions in each block")->capture_default_str();
  cmd.add_option("--kernel", c.kernel, "Convolution size (odd)")->capture_default_str();
  add_choice(cmd, "--norm", o.norm, kNormChoices, "Normalization after each convolution");
  cmd.add_option("--dropout,--drop-rate", c.dropout, "Dropout rate after the deepest encoder block and the bottleneck")
      ->capture_default_str();
  add_choice(cmd, "--padding", o.padding, kPaddings, "Convolution padding");
  cmd.add_option("--input-channels", c.in_channels, "Channels of the input images")->capture_default_str();
  cmd.add_option("--classes", c.classes, "Classes, background included")->capture_default_str();
  add_choice(cmd, "--head", o.head, kHeads, "Output head; auto: sigmoid for 2 classes, else softmax", {"auto"});
  add_choice(cmd, "--activation", o.activation, kActivations, "Activation after each convolution", {}, {"identity"});
  cmd.add_option("--size", o.size, "Patch size W x H (2D) or W x H x D (3D), e.g. 512x512 or 128x128x64");
  cmd.add_option("--batch-size,-b", o.batch, "Samples per batch")->capture_default_str();
}

bool model_options_given(const CLI::App& cmd) {
  for (const char* name : {"--dims", "--depth", "--start-filters", "--max-filters", "--pooling", "--deep-supervision",
                           "--convs-per-level", "--kernel", "--norm", "--dropout", "--padding", "--head", "--activation",
                           "--size", "--batch-size", "--image-width", "--image-height", "--image-depth"})
    if (cmd.get_option_no_throw(name) && cmd.count(name)) return true;
  return false;
}

std::vector<int64_t> parse_size(const std::string& text) {
  std::vector<int64_t> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t x = text.find('x', pos);
    const std::string part = text.substr(pos, x == std::string::npos ? std::string::npos : x - pos);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (part.empty() || used != part.size() || v < 1)
      throw std::invalid_argument("--size \"" + text + "\": expected positive sizes joined by x, such as 512x512");
    out.push_back(v);
    if (x == std::string::npos) break;
    pos = x + 1;
  }
  if (out.size() != 2 && out.size() != 3)
    throw std::invalid_argument("--size \"" + text + "\": expected W x H or W x H x D");
  return out;
}

std::vector<int64_t> model_input_size(const std::string& size, const std::map<std::string, std::string>& metadata,
                                      const std::string& weights_path, int dims) {
  std::string text = size;
  if (text.empty()) {
    const auto it = metadata.find("unet.patch");
    if (it == metadata.end()) throw std::invalid_argument(weights_path + " stores no patch size: pass --size");
    text = it->second;
  }
  std::vector<int64_t> s = parse_size(text);
  if (int(s.size()) != dims)
    throw std::invalid_argument("--size " + text + " for a " + std::to_string(dims) + "D model");
  return s;
}

Shape batch_shape(int64_t batch, int64_t channels, const std::vector<int64_t>& s) {
  return s.size() == 2 ? shape2d(batch, channels, s[1], s[0]) : shape3d(batch, channels, s[2], s[1], s[0]);
}

void ModelOptions::resolve() {
  config.norm = choose(kNormChoices, norm, "--norm");
  config.padding = choose(kPaddings, padding, "--padding");
  config.head = head == "auto" ? default_head(config.classes) : choose(kHeads, head, "--head");
  config.activation = {choose(kActivations, activation, "--activation"), 0.01f};
  if (!pooling.empty()) config.pooling = parse_pooling(pooling, config.dims);
  config.validate();
  if (batch < 1) throw std::invalid_argument("--batch-size " + std::to_string(batch) + ": expected at least 1");
}

Shape ModelOptions::input_shape() const {
  const std::vector<int64_t> s = parse_size(size);
  if (int(s.size()) != config.dims)
    throw std::invalid_argument("--size " + size + " has " + std::to_string(s.size()) + " dimensions, --dims is " +
                                std::to_string(config.dims));
  return batch_shape(batch, config.in_channels, s);
}

}  // namespace unet
