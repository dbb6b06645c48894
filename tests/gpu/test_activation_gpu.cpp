// CPU/GPU parity for bias + activation. Skips, saying so, where no GPU is present.
#include <gtest/gtest.h>

#include <vector>

#include "engine/device/device_buffer.h"
#include "tests/gpu/gpu_test.h"
#include "kernels/activation.h"
#include "tests/gradcheck.h"

namespace unet {
namespace {

class Gpu : public ::testing::Test {
 protected:
  void SetUp() override {
    UNET_GPU_OR_SKIP("GPU parity");
  }
};

TEST_F(Gpu, BiasActivationMatchesCpu) {
  for (Shape s : {shape2d(3, 5, 17, 19), shape3d(2, 4, 5, 6, 7)}) {
    for (Activation kind : {Activation::relu, Activation::leaky_relu}) {
      const ActivationSpec act{kind, 0.1f};
      auto y = test::random_vector(s.count(), 1), dy = test::random_vector(s.count(), 2);
      auto bias = test::random_vector(s.c, 3);
      std::vector<float> dbias(s.c, 0.f);

      DeviceBuffer<float> gy(y.size()), gdy(dy.size()), gbias(bias.size()), gdbias(s.c);
      gy.copy_from_host(y.data(), nullptr);
      gdy.copy_from_host(dy.data(), nullptr);
      gbias.copy_from_host(bias.data(), nullptr);
      gdbias.zero(nullptr);
      bias_act_forward_cuda(Tensor(gy.data(), s), gbias.data(), act, nullptr);
      bias_act_backward_cuda(Tensor(gy.data(), s), Tensor(gdy.data(), s), gdbias.data(), act, nullptr);

      bias_act_forward(Tensor(y.data(), s), bias.data(), act);
      bias_act_backward(Tensor(y.data(), s), Tensor(dy.data(), s), dbias.data(), act);

      std::vector<float> hy(y.size()), hdy(dy.size()), hdbias(s.c);
      gy.copy_to_host(hy.data(), nullptr);
      gdy.copy_to_host(hdy.data(), nullptr);
      gdbias.copy_to_host(hdbias.data(), nullptr);
      UNET_CUDA_CHECK(cudaStreamSynchronize(nullptr));
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_FLOAT_EQ(hy[i], y[i]) << i;
        ASSERT_FLOAT_EQ(hdy[i], dy[i]) << i;
      }
      for (int64_t c = 0; c < s.c; ++c) EXPECT_NEAR(hdbias[c], dbias[c], 1e-4 * (1 + std::fabs(dbias[c])));
    }
  }
}

}  // namespace
}  // namespace unet
