#include "engine/model/unet_config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
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
  if (!pooling.empty()) {
    if (int(pooling.size()) != depth)
      bad("pooling", pooling_text(pooling, dims), "one window per level (" + std::to_string(depth) + ")");
    for (const PoolWindow& w : pooling) {
      const bool ok = (w.d == 1 || w.d == 2) && (w.h == 1 || w.h == 2) && (w.w == 1 || w.w == 2) &&
                      (dims == 3 || w.d == 1) && w.taps() > 1;
      if (!ok)
        bad("pooling", pooling_text(pooling, dims),
            "windows of 1 or 2 per axis (" + std::string(dims == 3 ? "W x H x D" : "W x H") +
                "), each pooling at least one axis");
    }
  }
  if (deep_supervision && padding != Padding::same)
    bad("deep supervision", "on", "\"same\" padding (its heads need the decoder levels on the input's grid)");
  if (convs_per_level < 1 || convs_per_level > 8) bad("convolutions per level", std::to_string(convs_per_level), "1 to 8");
  if (kernel < 1 || kernel % 2 == 0 || kernel > 7) bad("kernel", std::to_string(kernel), "an odd size from 1 to 7");
  if (!(dropout >= 0.f && dropout < 1.f)) bad("dropout", std::to_string(dropout), "a rate in [0, 1)");
  if (in_channels < 1) bad("input channels", std::to_string(in_channels), "at least 1");
  if (classes < 2) bad("classes", std::to_string(classes), "at least 2 (background included)");
  if (head == Head::sigmoid && classes != 2)
    bad("classes", std::to_string(classes), "2 with the sigmoid head (use softmax for more)");
}

std::vector<float> UNetConfig::loss_weights() const {
  if (!deep_supervision) return {1.f};
  std::vector<float> w(static_cast<size_t>(depth));
  double total = 0;
  for (int l = 0; l < depth; ++l) total += w[l] = (depth > 1 && l == depth - 1) ? 0.f : std::ldexp(1.f, -l);
  for (float& v : w) v = static_cast<float>(v / total);
  return w;
}

std::string window_text(PoolWindow w, int dims) {
  return std::to_string(w.w) + "x" + std::to_string(w.h) + (dims == 3 ? "x" + std::to_string(w.d) : "");
}

std::string pooling_text(const std::vector<PoolWindow>& pooling, int dims) {
  std::string s;
  for (const PoolWindow& w : pooling) s += (s.empty() ? "" : ",") + window_text(w, dims);
  return s;
}

std::vector<PoolWindow> parse_pooling(const std::string& text, int dims) {
  std::vector<PoolWindow> out;
  const std::string expected = dims == 3 ? "WxHxD" : "WxH";
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = text.find(',', pos);
    const std::string part = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    int v[3] = {1, 1, 1};
    char end = 0;
    const int n = std::sscanf(part.c_str(), "%dx%dx%d%c", &v[0], &v[1], &v[2], &end);
    if (n != dims || part.find_first_not_of("0123456789x") != std::string::npos ||
        std::count(part.begin(), part.end(), 'x') != dims - 1)
      throw std::invalid_argument("pooling \"" + text + "\": expected one " + expected +
                                  " window per level joined by commas, such as " +
                                  (dims == 3 ? "2x2x1,2x2x2" : "2x2,2x2"));
    out.push_back({v[2], v[1], v[0]});
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

std::string UNetConfig::str() const {
  return std::to_string(dims) + "D U-Net: depth " + std::to_string(depth) +
         (pooling.empty() ? "" : " (pooling " + pooling_text(pooling, dims) + ")") + ", start filters " +
         std::to_string(start_filters) + (max_filters > 0 ? " (at most " + std::to_string(max_filters) + ")" : "") +
         ", " + std::to_string(convs_per_level) + " convs/level " +
         std::to_string(kernel) + "^" + std::to_string(dims) + ", norm " + choice_name(kNormChoices, norm) + ", dropout " +
         std::to_string(dropout).substr(0, 4) + ", padding " + choice_name(kPaddings, padding) +
         ", " + std::to_string(in_channels) + " input channel(s), " + std::to_string(classes) + " classes (" +
         choice_name(kHeads, head) + ")" + (deep_supervision ? ", deep supervision" : "");
}

}  // namespace unet
