#include "kernels/base/cuda_check.h"

#include <cstdio>

namespace unet {

static std::string describe(const char* library, const char* reason, const char* call, const char* file,
                            int line) {
  return std::string(file) + ":" + std::to_string(line) + ": " + library + " error \"" + reason +
         "\" in " + call;
}

void throw_cuda_error(const char* library, const char* reason, const char* call, const char* file,
                      int line) {
  throw CudaError(describe(library, reason, call, file, line));
}

void report_cuda_error(const char* library, const char* reason, const char* call, const char* file,
                       int line) noexcept {
  std::fprintf(stderr, "%s\n", describe(library, reason, call, file, line).c_str());
}

}  // namespace unet
