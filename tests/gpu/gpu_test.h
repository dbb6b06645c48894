// How a GPU test meets a machine without a GPU: it skips, saying why and what
// went unchecked; under UNET_REQUIRE_GPU=1 (tools/gpu_suite.sh check) that is a
// failure instead, and so, always, is a GPU that is there but cannot be used
// (a driver too old for this CUDA), which a skip would hide.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/device/device_buffer.h"

namespace unet::test {

inline bool gpu_required() {
  const char* v = std::getenv("UNET_REQUIRE_GPU");
  return v && std::strcmp(v, "1") == 0;
}

template <class T>
DeviceBuffer<T> upload(const std::vector<T>& v) {
  DeviceBuffer<T> d(v.size());
  d.copy_from_host(v.data(), nullptr);
  return d;
}

template <class T>
std::vector<T> download(const DeviceBuffer<T>& d) {
  std::vector<T> v(d.size());
  d.copy_to_host(v.data(), nullptr);
  UNET_CUDA_CHECK(cudaDeviceSynchronize());
  return v;
}

// |gpu - cpu| <= rel x (1 + |cpu|), element by element, named on failure.
inline void expect_near(const std::vector<float>& gpu, const std::vector<float>& cpu, double rel,
                        const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  for (size_t i = 0; i < cpu.size(); ++i)
    ASSERT_NEAR(gpu[i], cpu[i], rel * (1 + std::fabs(cpu[i]))) << what << " element " << i;
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
