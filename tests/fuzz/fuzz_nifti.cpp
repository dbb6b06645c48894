// libFuzzer target for the NIfTI reader: any bytes must give a Volume or a
// FileError, never a crash, a hang or an unbounded allocation. nifti_clib reads
// only from files, so each input is written to a temporary file first: as a
// .nii, or, when the first byte is odd, split into a .hdr/.img pair after 348
// bytes. Any exception other than FileError is a finding (it escapes and aborts).
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "io/image_file.h"

namespace {

const std::string& stem() {
  static const std::string s = "/tmp/unet_fuzz_nifti_" + std::to_string(::getpid());
  return s;
}

void put(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return;
  if (size) std::fwrite(data, 1, size, f);
  std::fclose(f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool pair = size > 0 && (data[0] & 1);
  std::string path;
  if (pair) {
    const size_t cut = size < 348 ? size : 348;
    put(stem() + ".hdr", data, cut);
    put(stem() + ".img", data + cut, size - cut);
    path = stem() + ".hdr";
  } else {
    path = stem() + ".nii";
    put(path, data, size);
  }
  try {
    unet::Volume v = unet::read_image(path);
    (void)unet::describe(v);
  } catch (const unet::FileError&) {
  }
  std::remove(path.c_str());
  if (pair) std::remove((stem() + ".img").c_str());
  return 0;
}
