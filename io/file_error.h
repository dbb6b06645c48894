// The error every reader and writer of files throws, here alone so that any
// folder that reads or writes a file may include it without the rest of io/.
#pragma once
#include <stdexcept>

namespace unet {

// Thrown for any file that cannot be read as what it claims to be; what()
// names the file, the field and what was expected.
struct FileError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace unet
