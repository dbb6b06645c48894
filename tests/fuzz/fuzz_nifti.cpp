// libFuzzer target for the NIfTI reader: any bytes must give a Volume or a
// FileError, never a crash, a hang or an unbounded allocation. nifti_clib reads
// only from files: each input is written to a temporary .nii, or, when the
// first byte is odd, split into a .hdr/.img pair after 348 bytes. Any
// exception other than FileError is a finding (it escapes and aborts).
#include <cstdint>
#include <cstdio>
#include <string>

#include "io/image_file.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool pair = size > 0 && (data[0] & 1);
  const size_t cut = pair ? (size < 348 ? size : 348) : size;
  const std::string path = unet::fuzz::input_file(pair ? ".hdr" : ".nii", data, cut);
  const std::string img = path.substr(0, path.size() - 4) + ".img";
  if (pair) unet::fuzz::put(img, data + cut, size - cut);
  try {
    unet::Volume v = unet::read_image(path);
    (void)unet::describe(v);
  } catch (const unet::FileError&) {
  }
  std::remove(path.c_str());
  if (pair) std::remove(img.c_str());
  return 0;
}
