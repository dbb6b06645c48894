// libFuzzer target for the dataset CSV manifest's parser: any bytes must give
// a dataset or a FileError (a row naming a file that is not there included),
// never a crash. Any exception other than FileError is a finding.
#include <cstdint>
#include <cstdio>
#include <string>

#include "io/data/dataset.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = unet::fuzz::input_file(".csv", data, size);
  try {
    (void)unet::open_csv(path);
  } catch (const unet::FileError&) {
  }
  std::remove(path.c_str());
  return 0;
}
