// The safetensors format (Hugging Face): 8 bytes little-endian header length N,
// N bytes of JSON {"__metadata__": {string: string}, name: {"dtype", "shape",
// "data_offsets": [begin, end]}}, then the raw little-endian tensor bytes. We
// write float32 ("F32") tensors only and read F32 back; Python's safetensors
// and PyTorch read our files as they are.
//
// Writing is atomic (io/atomic_file.h): a crash leaves the old file or the new,
// never half of one. Reading checks every field and throws FileError naming the file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/atomic_file.h"
#include "io/file_error.h"

namespace unet {

struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;  // product of shape
};

struct Safetensors {
  std::map<std::string, std::string> metadata;
  std::vector<NamedTensor> tensors;  // in file order
  const NamedTensor* find(const std::string& name) const;
};

void write_safetensors(const std::string& path, const Safetensors& file);
Safetensors read_safetensors(const std::string& path);

}  // namespace unet
