// The readers take file names: each libFuzzer input is written to a temporary
// file of this process first (the name ends in `suffix`, which picks the format).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace unet::fuzz {

inline void put(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return;
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
}

// /tmp/unet_fuzz_<pid><suffix>, holding the input.
inline std::string input_file(const std::string& suffix, const uint8_t* data, size_t size) {
  const std::string path = "/tmp/unet_fuzz_" + std::to_string(::getpid()) + suffix;
  put(path, data, size);
  return path;
}

}  // namespace unet::fuzz
