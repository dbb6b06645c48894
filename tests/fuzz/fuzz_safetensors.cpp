// libFuzzer target for the safetensors reader (weights, checkpoints): any bytes
// must give the tensors or a FileError, never a crash, an overread or an
// allocation the file's size does not justify. Any exception other than
// FileError is a finding (it escapes and aborts).
#include <cstdint>
#include <cstdio>
#include <string>

#include "engine/storage/safetensors.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = unet::fuzz::input_file(".safetensors", data, size);
  try {
    const unet::Safetensors f = unet::read_safetensors(path);
    (void)f.find("head.weight");
  } catch (const unet::FileError&) {
  }
  std::remove(path.c_str());
  return 0;
}
