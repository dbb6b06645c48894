// How a GPU test meets a machine without a GPU: it skips, saying why and what
// went unchecked; under UNET_REQUIRE_GPU=1 (tools/gpu_suite.sh check) that is a
// failure instead, and so, always, is a GPU that is there but cannot be used
// (a driver too old for this CUDA), which a skip would hide.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#include "engine/device_buffer.h"

namespace unet::test {

inline bool gpu_required() {
  const char* v = std::getenv("UNET_REQUIRE_GPU");
  return v && std::strcmp(v, "1") == 0;
}

}  // namespace unet::test

// In a test body or SetUp(): returns from it, skipped or failed, unless a GPU is usable.
#define UNET_GPU_OR_SKIP(unchecked)                                                                  \
  do {                                                                                               \
    const ::unet::CudaPresence unet_gpu_ = ::unet::cuda_presence();                                  \
    if (!unet_gpu_.error.empty()) FAIL() << unet_gpu_.error << ": " << unchecked << " not checked"; \
    if (unet_gpu_.count == 0) {                                                                      \
      if (::unet::test::gpu_required())                                                              \
        FAIL() << unet_gpu_.absent << " and UNET_REQUIRE_GPU=1: " << unchecked << " not checked";    \
      GTEST_SKIP() << unet_gpu_.absent << ": " << unchecked << " not checked";                       \
    }                                                                                                \
  } while (0)
