// CPU/GPU parity for the cuDNN convolution, the up-convolution, max-pool, the
// confusion counts, crop, dropout, batch and
// instance norm, every loss and the optimizer step, 2D and 3D, odd sizes and channel-slice views. Skips, saying
// so, where no GPU is present. Tolerances: pooling, cropping and dropout move
// values without arithmetic (or multiply by the same factor): bit-identical.
// The optimizer's sqrt and division may round differently on the GPU: 1e-6
// relative. The norms and losses sum in another order (a block tree against the
// CPU's chunks, both in double): 1e-5 relative. Convolutions sum in float in
// another order (strict FP32, no TF32): 1e-4 of the largest magnitude. Type
// conversions are half.h's on both: bit-identical.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "engine/device/device_buffer.h"
#include "tests/gpu/gpu_test.h"
#include "kernels/activation.h"
#include "kernels/conv.h"
#include "kernels/convert.h"
#include "kernels/crop.h"
#include "kernels/dropout.h"
#include "kernels/loss.h"
#include "kernels/maxpool.h"
#include "kernels/metrics.h"
#include "kernels/norm.h"
#include "kernels/optimizer.h"
#include "kernels/subsample.h"
#include "kernels/upconv.h"
#include "tests/gradcheck.h"

namespace unet {
namespace {

using test::download;
using test::expect_near;
using test::random_vector;
using test::upload;

class GpuKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    UNET_GPU_OR_SKIP("GPU parity");
  }
};

// Isotropic and anisotropic windows (2x2x1, 1x2x2; 2D 2x1), odd remainders.
TEST_F(GpuKernels, MaxPoolMatchesCpu) {
  for (auto [in, win] : {std::pair{shape2d(2, 3, 9, 11), PoolWindow{}}, std::pair{shape3d(2, 2, 5, 6, 7), PoolWindow{}},
                         std::pair{shape3d(2, 2, 5, 6, 7), PoolWindow{1, 2, 2}},
                         std::pair{shape3d(1, 3, 6, 7, 5), PoolWindow{2, 2, 1}},
                         std::pair{shape2d(2, 2, 7, 9), PoolWindow{1, 1, 2}}}) {
    const Shape out = maxpool_output_shape(in, win);
    auto x = random_vector(in.count(), 1), dy = random_vector(out.count(), 2), dx = random_vector(in.count(), 3);
    std::vector<float> y(out.count());
    std::vector<uint8_t> arg(out.count());
    auto gx = upload(x), gy = upload(y), gdy = upload(dy), gdx = upload(dx);
    DeviceBuffer<uint8_t> garg(arg.size());
    maxpool_forward_cuda(Tensor(gx.data(), in), Tensor(gy.data(), out), garg.data(), nullptr, win);
    maxpool_forward(Tensor(x.data(), in), Tensor(y.data(), out), arg.data(), win);
    EXPECT_EQ(download(gy), y) << in.str();
    EXPECT_EQ(download(garg), arg) << in.str();
    for (GradMode mode : {GradMode::accumulate, GradMode::overwrite}) {
      maxpool_backward_cuda(Tensor(gdy.data(), out), garg.data(), Tensor(gdx.data(), in), mode, nullptr, win);
      maxpool_backward(Tensor(dy.data(), out), arg.data(), Tensor(dx.data(), in), mode, win);
      EXPECT_EQ(download(gdx), dx) << in.str();
    }
  }
}

TEST_F(GpuKernels, SubsampledLabelsMatchCpu) {
  const Grid grid{6, 20, 18}, stride{1, 4, 2};
  std::vector<int32_t> in(2 * 6 * 20 * 18);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int32_t>((i * 7 + i / 5) % 4);
  const Grid o = subsampled_grid(grid, stride);
  std::vector<int32_t> out(static_cast<size_t>(2 * o[0] * o[1] * o[2]), -1);
  auto gin = upload(in), gout = upload(out);
  subsample_labels_cuda(gin.data(), 2, grid, stride, gout.data(), nullptr);
  subsample_labels(in.data(), 2, grid, stride, out.data());
  EXPECT_EQ(download(gout), out);
}

TEST_F(GpuKernels, CropMatchesCpu) {
  for (auto [big, small] : {std::pair{shape2d(2, 3, 12, 13), shape2d(2, 3, 7, 8)},
                            std::pair{shape3d(1, 2, 9, 8, 10), shape3d(1, 2, 5, 4, 6)}}) {
    auto x = random_vector(big.count(), 4), y = std::vector<float>(small.count());
    auto gx = upload(x), gy = upload(y);
    crop_forward_cuda(Tensor(gx.data(), big), Tensor(gy.data(), small), nullptr);
    crop_forward(Tensor(x.data(), big), Tensor(y.data(), small));
    EXPECT_EQ(download(gy), y);
    auto dx = random_vector(big.count(), 5);
    auto gdx = upload(dx);
    for (GradMode mode : {GradMode::accumulate, GradMode::overwrite}) {
      crop_backward_cuda(Tensor(gy.data(), small), Tensor(gdx.data(), big), mode, nullptr);
      crop_backward(Tensor(y.data(), small), Tensor(dx.data(), big), mode);
      EXPECT_EQ(download(gdx), dx);
    }
  }
}

TEST_F(GpuKernels, DropoutDropsWhatTheCpuDrops) {
  // A channel-slice view (batch stride larger than the sample), as the U-Net's skip halves are.
  const Shape s = shape3d(3, 2, 4, 5, 6);
  const int64_t stride = 2 * s.sample();
  auto x = random_vector(s.n * stride, 6);
  std::vector<float> y(x.size(), 0.f);
  auto gx = upload(x), gy = upload(y);
  const DropoutSpec spec{0.3f, 42, 7, 5};
  dropout_forward_cuda(Tensor(gx.data(), s, stride), Tensor(gy.data(), s, stride), spec, nullptr);
  dropout_forward(Tensor(x.data(), s, stride), Tensor(y.data(), s, stride), spec);
  EXPECT_EQ(download(gy), y);
  dropout_backward_cuda(Tensor(gy.data(), s, stride), Tensor(gx.data(), s, stride), spec, nullptr);
  dropout_backward(Tensor(y.data(), s, stride), Tensor(x.data(), s, stride), spec);
  EXPECT_EQ(download(gx), x);
}

TEST_F(GpuKernels, NormsMatchCpu) {
  for (NormKind kind : {NormKind::batch, NormKind::instance})
    for (Shape s : {shape2d(3, 4, 9, 11), shape3d(2, 3, 5, 6, 7)}) {
      const NormSpec spec{kind, 1e-5f, 0.1f};
      const int64_t groups = norm_groups(kind, s);
      const std::string what = std::string(kind == NormKind::batch ? "batch " : "instance ") + s.str();
      auto x = random_vector(s.count(), 20, -2.f, 3.f), dy = random_vector(s.count(), 21);
      auto gamma = random_vector(s.c, 22, 0.5f, 1.5f), beta = random_vector(s.c, 23);
      std::vector<float> y(s.count()), dx(s.count()), mean(groups), invstd(groups), rm(s.c, 0.f), rv(s.c, 1.f);
      std::vector<float> dgamma(s.c, 0.25f), dbeta(s.c, -0.25f);
      auto gx = upload(x), gdy = upload(dy), ggamma = upload(gamma), gbeta = upload(beta), gy = upload(y),
           gdx = upload(dx), gmean = upload(mean), ginvstd = upload(invstd), grm = upload(rm), grv = upload(rv),
           gdgamma = upload(dgamma), gdbeta = upload(dbeta);
      DeviceBuffer<double> ws(static_cast<size_t>(3 * groups));
      norm_forward_train_cuda(Tensor(gx.data(), s), Tensor(gy.data(), s), ggamma.data(), gbeta.data(), gmean.data(),
                              ginvstd.data(), grm.data(), grv.data(), spec, ws.data(), nullptr);
      norm_forward_train(Tensor(x.data(), s), Tensor(y.data(), s), gamma.data(), beta.data(), mean.data(),
                         invstd.data(), rm.data(), rv.data(), spec);
      expect_near(download(gy), y, 1e-5, what + " y");
      expect_near(download(grm), rm, 1e-5, what + " running mean");
      expect_near(download(grv), rv, 1e-5, what + " running var");
      norm_backward_cuda(Tensor(gx.data(), s), Tensor(gdy.data(), s), Tensor(gdx.data(), s), ggamma.data(),
                         gmean.data(), ginvstd.data(), gdgamma.data(), gdbeta.data(), spec, ws.data(), nullptr);
      norm_backward(Tensor(x.data(), s), Tensor(dy.data(), s), Tensor(dx.data(), s), gamma.data(), mean.data(),
                    invstd.data(), dgamma.data(), dbeta.data(), spec);
      expect_near(download(gdx), dx, 1e-5, what + " dx");
      expect_near(download(gdgamma), dgamma, 1e-5, what + " dgamma");
      expect_near(download(gdbeta), dbeta, 1e-5, what + " dbeta");
      norm_forward_infer_cuda(Tensor(gx.data(), s), Tensor(gy.data(), s), ggamma.data(), gbeta.data(), grm.data(),
                              grv.data(), spec, ws.data(), nullptr);
      norm_forward_infer(Tensor(x.data(), s), Tensor(y.data(), s), gamma.data(), beta.data(), rm.data(), rv.data(),
                         spec);
      expect_near(download(gy), y, 1e-5, what + " inference");
    }
}

TEST_F(GpuKernels, LossesMatchCpu) {
  const std::vector<std::pair<LossKind, Head>> kinds{
      {LossKind::bce, Head::sigmoid},        {LossKind::dice, Head::sigmoid},    {LossKind::dice_ce, Head::sigmoid},
      {LossKind::ce, Head::softmax},         {LossKind::dice_ce, Head::softmax}, {LossKind::jaccard, Head::softmax},
      {LossKind::focal_tversky, Head::softmax}, {LossKind::weighted_ce, Head::softmax}};
  for (const auto& [kind, head] : kinds)
    for (bool three_d : {false, true}) {
      const int64_t classes = head == Head::sigmoid ? 2 : 3;
      const Shape s = three_d ? shape3d(2, head == Head::sigmoid ? 1 : 3, 5, 6, 7)
                              : shape2d(3, head == Head::sigmoid ? 1 : 3, 17, 19);
      LossSpec spec = make_loss(kind, head, 0.7f, 0.75f,
                                kind == LossKind::weighted_ce ? std::vector<float>{0.2f, 1.f, 3.f} : std::vector<float>{});
      spec.ignore_label = static_cast<int32_t>(classes);  // one label value beyond the classes is ignored
      const int64_t voxels = s.n * s.spatial();
      auto z = random_vector(s.count(), 30, -3.f, 3.f);
      std::vector<int32_t> labels(voxels);
      for (int64_t i = 0; i < voxels; ++i) labels[i] = static_cast<int32_t>((i * 7 + i / 5) % (classes + 1));
      std::vector<float> dz(s.count());
      auto gz = upload(z), gdz = upload(dz);
      auto glabels = upload(labels);
      DeviceBuffer<double> ws(static_cast<size_t>(loss_workspace_doubles(s)));
      const double gpu = loss_forward_backward_cuda(Tensor(gz.data(), s), glabels.data(), Tensor(gdz.data(), s), spec,
                                                    ws.data(), nullptr);
      const double cpu = loss_forward_backward(Tensor(z.data(), s), labels.data(), Tensor(dz.data(), s), spec);
      const std::string what = "loss kind " + std::to_string(int(kind)) + " " + s.str();
      EXPECT_NEAR(gpu, cpu, 1e-6 * (1 + std::fabs(cpu))) << what;
      expect_near(download(gdz), dz, 1e-5, what + " dlogits");
    }
}

TEST_F(GpuKernels, CudnnConvolutionMatchesCpu) {
  cudnnHandle_t handle;
  UNET_CUDNN_CHECK(cudnnCreate(&handle));
  struct Case {
    Shape in;
    int64_t co;
    ConvSpec spec;
  };
  for (const Case& k : {Case{shape2d(2, 3, 17, 19), 5, {3, Padding::same}}, Case{shape2d(2, 4, 16, 16), 3, {3, Padding::valid}},
                        Case{shape2d(1, 6, 8, 8), 2, {1, Padding::same}}, Case{shape3d(2, 2, 7, 8, 9), 3, {3, Padding::same}},
                        Case{shape3d(1, 3, 9, 9, 9), 2, {3, Padding::valid}}}) {
    const Shape out = conv_output_shape(k.in, k.co, k.spec);
    const int64_t wn = k.co * k.in.c * k.spec.kernel * k.spec.kernel * (k.in.dims == 3 ? k.spec.kernel : 1);
    auto x = random_vector(k.in.count(), 40), w = random_vector(wn, 41), b = random_vector(k.co, 42);
    auto dy = random_vector(out.count(), 43), dx = random_vector(k.in.count(), 44);
    std::vector<float> y(out.count()), dw(wn, 0.5f), db(k.co, -0.5f);
    std::vector<float> ws(static_cast<size_t>(conv_workspace_floats(k.in, k.co, k.spec)));
    auto gx = upload(x), gw = upload(w), gb = upload(b), gy = upload(y), gdy = upload(dy), gdx = upload(dx),
         gdw = upload(dw), gdb = upload(db);
    ConvCudnn conv(handle, k.in, k.co, k.spec);
    DeviceBuffer<uint8_t> gws(conv.workspace_bytes());
    conv.forward(Tensor(gx.data(), k.in), gw.data(), gb.data(), Tensor(gy.data(), out), gws.data(), nullptr);
    conv_forward(Tensor(x.data(), k.in), w.data(), b.data(), Tensor(y.data(), out), k.spec, ws.data());
    expect_near(download(gy), y, 1e-4, "conv forward " + k.in.str());
    conv.backward(Tensor(gx.data(), k.in), gw.data(), Tensor(gdy.data(), out), Tensor(gdx.data(), k.in), gdw.data(),
                  gdb.data(), GradMode::accumulate, gws.data(), nullptr);
    conv_backward(Tensor(x.data(), k.in), w.data(), Tensor(dy.data(), out), Tensor(dx.data(), k.in), dw.data(),
                  db.data(), k.spec, GradMode::accumulate, ws.data());
    expect_near(download(gdx), dx, 1e-4, "conv dx " + k.in.str());
    expect_near(download(gdw), dw, 1e-4, "conv dw " + k.in.str());
    expect_near(download(gdb), db, 1e-4, "conv dbias " + k.in.str());
  }
  UNET_CUDNN_CHECK(cudnnDestroy(handle));
}

// As a U-Net uses it: the output and its gradient are channel slices of a
// concatenation buffer (planned with those strides), and a no-norm layer's
// forward is conv + bias + ReLU in one cuDNN call, which must run on a packed
// 2D output (on slices and in 3D cuDNN may decline it; the layer then runs unfused).
TEST_F(GpuKernels, CudnnConvolutionOnChannelSlicesAndFusedReluMatchCpu) {
  cudnnHandle_t handle;
  UNET_CUDNN_CHECK(cudnnCreate(&handle));
  int fused = 0;
  for (auto [in, slice] : {std::pair{shape2d(2, 4, 16, 16), false}, std::pair{shape2d(2, 4, 16, 16), true},
                           std::pair{shape3d(2, 3, 6, 8, 8), true}}) {
    const ConvSpec spec{3, Padding::same};
    const int64_t co = 4, wn = co * in.c * (in.dims == 3 ? 27 : 9);
    Shape whole = conv_output_shape(in, co, spec);
    if (slice) whole.c = 2 * co;  // the concatenation: this layer writes its first half
    auto x = random_vector(in.count(), 60), w = random_vector(wn, 61), b = random_vector(co, 62);
    auto y = random_vector(whole.count(), 63), dy = random_vector(whole.count(), 64);
    std::vector<float> dx(in.count(), 0.f), dw(wn, 0.f), db(co, 0.f);
    std::vector<float> ws(static_cast<size_t>(conv_workspace_floats(in, co, spec)));
    auto gx = upload(x), gw = upload(w), gb = upload(b), gy = upload(y), gdy = upload(dy), gdx = upload(dx),
         gdw = upload(dw), gdb = upload(db);
    const int64_t stride = whole.sample();
    ConvCudnn conv(handle, in, co, spec, false, false, {0, stride, stride});
    DeviceBuffer<uint8_t> gws(conv.workspace_bytes());
    const Tensor cy = Tensor(y.data(), whole).channels(0, co), gyv = Tensor(gy.data(), whole).channels(0, co);
    const Tensor cdy = Tensor(dy.data(), whole).channels(0, co), gdyv = Tensor(gdy.data(), whole).channels(0, co);
    conv.forward(Tensor(gx.data(), in), gw.data(), gb.data(), gyv, gws.data(), nullptr);
    conv_forward(Tensor(x.data(), in), w.data(), b.data(), cy, spec, ws.data());
    expect_near(download(gy), y, 1e-4, "conv forward into a slice " + in.str());
    conv.backward(Tensor(gx.data(), in), gw.data(), gdyv, Tensor(gdx.data(), in), gdw.data(), gdb.data(),
                  GradMode::overwrite, gws.data(), nullptr);
    conv_backward(Tensor(x.data(), in), w.data(), cdy, Tensor(dx.data(), in), dw.data(), db.data(), spec,
                  GradMode::overwrite, ws.data());
    expect_near(download(gdx), dx, 1e-4, "conv dx from a slice " + in.str());
    expect_near(download(gdw), dw, 1e-4, "conv dw from a slice " + in.str());
    expect_near(download(gdb), db, 1e-4, "conv dbias from a slice " + in.str());
    const bool did = conv.forward_bias_relu(Tensor(gx.data(), in), gw.data(), gb.data(), gyv, gws.data(), nullptr);
    if (!slice && in.dims == 2) {
      EXPECT_TRUE(did) << "cuDNN declined the fused call on a packed 2D output";
    }
    if (did) {
      ++fused;
      conv_forward(Tensor(x.data(), in), w.data(), nullptr, cy, spec, ws.data());
      bias_act_forward(cy, b.data(), {Activation::relu, 0.f});
      expect_near(download(gy), y, 1e-4, "fused conv + bias + ReLU " + in.str() + (slice ? " into a slice" : ""));
    }
  }
  UNET_CUDNN_CHECK(cudnnDestroy(handle));
  std::printf("fused conv + bias + ReLU ran on %d of 3 layouts (the others run unfused)\n", fused);
}

TEST_F(GpuKernels, UpConvolutionMatchesCpu) {
  cublasHandle_t handle;
  UNET_CUBLAS_CHECK(cublasCreate(&handle));
  struct Case {
    Shape in;
    int64_t co;
    PoolWindow win;
  };
  for (auto [in, co, win] : {Case{shape2d(2, 6, 5, 7), 3, {}}, Case{shape3d(2, 4, 3, 4, 5), 2, {}},
                             Case{shape3d(2, 4, 3, 4, 5), 3, {1, 2, 2}}, Case{shape3d(1, 3, 4, 3, 2), 2, {2, 1, 2}},
                             Case{shape2d(1, 5, 4, 6), 2, {1, 2, 1}}}) {
    const Shape out = upconv_output_shape(in, co, win);
    const int64_t wn = upconv_weight_count(in, co, win);
    auto x = random_vector(in.count(), 50), w = random_vector(wn, 51), b = random_vector(co, 52);
    auto dy = random_vector(out.count(), 53), dx = random_vector(in.count(), 54);
    std::vector<float> y(out.count()), dw(wn, 0.5f), db(co, -0.5f);
    std::vector<float> ws(static_cast<size_t>(upconv_workspace_floats(in, co, win)));
    auto gx = upload(x), gw = upload(w), gb = upload(b), gy = upload(y), gdy = upload(dy), gdx = upload(dx),
         gdw = upload(dw), gdb = upload(db);
    DeviceBuffer<float> gws(static_cast<size_t>(upconv_workspace_floats_cuda(in, co, win)));
    upconv_forward_cuda(handle, Tensor(gx.data(), in), gw.data(), gb.data(), Tensor(gy.data(), out), gws.data(),
                        nullptr, win);
    upconv_forward(Tensor(x.data(), in), w.data(), b.data(), Tensor(y.data(), out), ws.data(), win);
    expect_near(download(gy), y, 1e-4, "upconv forward " + in.str());
    for (GradMode mode : {GradMode::accumulate, GradMode::overwrite}) {
      upconv_backward_cuda(handle, Tensor(gx.data(), in), gw.data(), Tensor(gdy.data(), out), Tensor(gdx.data(), in),
                           gdw.data(), gdb.data(), mode, gws.data(), nullptr, win);
      upconv_backward(Tensor(x.data(), in), w.data(), Tensor(dy.data(), out), Tensor(dx.data(), in), dw.data(),
                      db.data(), mode, ws.data(), win);
      expect_near(download(gdx), dx, 1e-4, "upconv dx " + in.str());
      expect_near(download(gdw), dw, 1e-4, "upconv dw " + in.str());
      expect_near(download(gdb), db, 1e-4, "upconv dbias " + in.str());
    }
  }
  UNET_CUBLAS_CHECK(cublasDestroy(handle));
}

TEST_F(GpuKernels, ConfusionCountsMatchCpu) {
  for (Head head : {Head::sigmoid, Head::softmax}) {
    const Shape s = shape3d(2, head == Head::sigmoid ? 1 : 4, 5, 6, 7);
    const int k = head_classes(head, s);
    const int64_t voxels = s.n * s.spatial();
    auto z = random_vector(s.count(), 60);
    std::vector<int32_t> labels(voxels);
    for (int64_t i = 0; i < voxels; ++i) labels[i] = static_cast<int32_t>((i * 5 + i / 3) % (k + 1));  // k: ignored
    auto gz = upload(z);
    auto glabels = upload(labels);
    DeviceBuffer<unsigned long long> ws(static_cast<size_t>(3 * k + 1));
    Confusion gpu(k), cpu(k);
    confusion_accumulate_cuda(Tensor(gz.data(), s), glabels.data(), head, k, gpu, ws.data(), nullptr);
    confusion_accumulate(Tensor(z.data(), s), labels.data(), head, k, cpu);
    EXPECT_EQ(gpu.tp, cpu.tp);
    EXPECT_EQ(gpu.fp, cpu.fp);
    EXPECT_EQ(gpu.fn, cpu.fn);
  }
}

TEST_F(GpuKernels, OptimizerStepsMatchCpu) {
  const int64_t n = 100003;
  for (OptimizerKind kind : {OptimizerKind::sgd, OptimizerKind::adam, OptimizerKind::adamw}) {
    OptimizerSpec spec;
    spec.kind = kind, spec.weight_decay = 0.01f, spec.nesterov = true;
    auto p = random_vector(n, 7), m = std::vector<float>(n, 0.f), v = m;
    auto gp = upload(p), gm = upload(m), gv = upload(v);
    for (int64_t step = 1; step <= 5; ++step) {
      const auto g = random_vector(n, 10 + step);
      auto gg = upload(g);
      optimizer_step_cuda(gp.data(), gg.data(), gm.data(), gv.data(), n, spec, 1e-2f, step, 0.5f, nullptr);
      optimizer_step(p.data(), g.data(), m.data(), v.data(), n, spec, 1e-2f, step, 0.5f);
    }
    const auto back = download(gp);
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(back[i], p[i], 1e-6 * (1 + std::fabs(p[i]))) << int(kind) << " " << i;
  }
}

TEST_F(GpuKernels, GradientNormMatchesCpuAndRepeats) {
  const int64_t n = 1000003;
  const auto g = random_vector(n, 70);
  auto gg = upload(g);
  DeviceBuffer<double> ws(kGradientNormBlocks + 1);
  const double gpu = gradient_norm_cuda(gg.data(), n, ws.data(), nullptr);
  EXPECT_NEAR(gpu, gradient_norm(g.data(), n), 1e-9 * gpu);
  EXPECT_EQ(gradient_norm_cuda(gg.data(), n, ws.data(), nullptr), gpu);  // deterministic
}

// bf16 and fp16 rounding on the GPU is the CPU's, bit for bit, including
// overflow to infinity, subnormals and NaN; and accumulating adds in fp32.
TEST_F(GpuKernels, ConvertMatchesCpu) {
  std::vector<float> x = random_vector(100000, 61);
  for (float& v : x) v *= 1e4f;  // past fp16's range
  for (float v : {0.f, -0.f, 65504.f, 65520.f, 1e-8f, 6e-8f, 3e-5f, INFINITY, -INFINITY, NAN}) x.push_back(v);
  const int64_t n = int64_t(x.size());
  const DeviceBuffer<float> gx = upload(x);
  for (DType t : {DType::bf16, DType::f16}) {
    std::vector<uint16_t> want(x.size());
    convert(x.data(), DType::f32, want.data(), t, n);
    DeviceBuffer<uint16_t> gh(x.size());
    convert_cuda(gx.data(), DType::f32, gh.data(), t, n, GradMode::overwrite, nullptr);
    EXPECT_EQ(download(gh), want) << dtype_name(t);
    std::vector<float> back(x.size(), 1.f);
    convert(want.data(), t, back.data(), DType::f32, n, GradMode::accumulate);
    DeviceBuffer<float> gb = upload(std::vector<float>(x.size(), 1.f));
    convert_cuda(gh.data(), t, gb.data(), DType::f32, n, GradMode::accumulate, nullptr);
    const std::vector<float> got = download(gb);
    for (int64_t i = 0; i < n; ++i) {
      if (std::isnan(back[i]) && std::isnan(got[i])) continue;
      ASSERT_EQ(got[i], back[i]) << dtype_name(t) << " element " << i;
    }
  }
}

}  // namespace
}  // namespace unet
