// libFuzzer target for the PNG and TIFF readers (built once per format, the
// file name's suffix UNET_FUZZ_SUFFIX picking the reader): any bytes must give
// a Volume or a FileError, never a crash, a leak, a longjmp across live C++
// objects (libpng) or an allocation the file does not justify (libtiff). Any
// exception other than FileError is a finding (it escapes and aborts).
#include <cstdint>
#include <cstdio>
#include <string>

#include "io/image_file.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = unet::fuzz::input_file(UNET_FUZZ_SUFFIX, data, size);
  try {
    unet::Volume v = unet::read_image(path);
    (void)unet::describe(v);
  } catch (const unet::FileError&) {
  }
  std::remove(path.c_str());
  return 0;
}
