// libFuzzer target for the TIFF reader (libtiff underneath): any bytes must
// give a Volume or a FileError, never a crash, a hang or an allocation the
// file does not justify. Any exception other than FileError is a finding.
#include <cstdint>
#include <cstdio>
#include <string>

#include "io/image_file.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = unet::fuzz::input_file(".tif", data, size);
  try {
    unet::Volume v = unet::read_image(path);
    (void)unet::describe(v);
  } catch (const unet::FileError&) {
  }
  std::remove(path.c_str());
  return 0;
}
