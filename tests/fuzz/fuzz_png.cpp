// libFuzzer target for the PNG reader: any bytes must give a Volume or a
// FileError, never a crash, a leak or a longjmp across live C++ objects. The
// reader takes file names, so each input is written to a temporary .png first.
// Any exception other than FileError is a finding (it escapes and aborts).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "io/image_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/unet_fuzz_png_" + std::to_string(::getpid()) + ".png";
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    unet::Volume v = unet::read_image(path);
    (void)unet::describe(v);
  } catch (const unet::FileError&) {
  }
  std::remove(path.c_str());
  return 0;
}
