// libFuzzer target for the nnU-Net / Decathlon dataset.json parser: any bytes
// as a folder's dataset.json must give a dataset or a FileError, never a
// crash. Any exception other than FileError is a finding.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "io/data/dataset.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string root = [] {
    const std::string d = "/tmp/unet_fuzz_decathlon_" + std::to_string(::getpid());
    std::filesystem::create_directories(d + "/imagesTr");
    return d;
  }();
  unet::fuzz::put(root + "/dataset.json", data, size);
  try {
    (void)unet::open_decathlon(root);
  } catch (const unet::FileError&) {
  }
  return 0;
}
