// The NCCL communicator with one rank, on device memory: every collective, and
// the bucketed gradient all-reduce over it. Skips, saying so, without a GPU.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "engine/parallel/communicator.h"
#include "engine/device/device_buffer.h"
#include "tests/gpu/gpu_test.h"
#include "engine/parallel/gradient_reducer.h"

namespace unet {
namespace {

TEST(Nccl, OneRankCollectivesAndBuckets) {
  UNET_GPU_OR_SKIP("the NCCL path");
  const std::string store = ::testing::TempDir() + "unet_nccl_" + std::to_string(::getpid());
  auto comm = make_nccl_communicator({0, 1, 0, "gpu-test"}, store, nullptr);
  ASSERT_EQ(comm->world(), 1);
  std::vector<float> host{1.f, -2.f, 3.5f, 4.f, 5.f, 6.f, 7.f};
  DeviceBuffer<float> dev(host.size());
  dev.copy_from_host(host.data(), nullptr);
  comm->all_reduce_sum(dev.data(), 7);  // one rank: the sum is itself
  comm->broadcast(dev.data(), 7, 0);
  comm->barrier();
  GradientReducer reducer(*comm, dev.data(), 7, {0, 3, 4}, 2);
  reducer.begin();
  reducer.ready(4), reducer.ready(0);
  reducer.finish();
  std::vector<float> back(host.size());
  dev.copy_to_host(back.data(), nullptr);
  UNET_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_EQ(back, host);
  std::filesystem::remove_all(store);
}

}  // namespace
}  // namespace unet
