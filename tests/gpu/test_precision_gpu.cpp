// The kernels in the precisions the model runs them in, against the CPU, and
// what only a real device can show: cuDNN's convolutions in TF32, bf16 and
// fp16; the cuBLAS up-convolution in bf16 and fp16; pooling, cropping and
// dropout on 16-bit tensors; both norms on 16-bit tensors; an elementwise
// kernel past its grid cap and past 2^31 elements (64-bit indices); a batch
// staged right after its buffer was allocated; and the versions of the
// libraries the tests ran with. Skips, saying so, where no GPU is present.
//
// The CPU reference runs in fp32 on the 16-bit inputs' exact values, so the
// only difference left is the GPU's one rounding of each 16-bit output (and,
// for sums, their order): moves (pooling, cropping, dropout's scaling) are bit
// for bit the CPU's result rounded; arithmetic is within a few units of the
// output type's last place: bf16 2e-2, fp16 4e-3, TF32 (inputs rounded to 10
// mantissa bits inside cuDNN) 1e-2, of each tensor's largest magnitude.
#include <cublas_v2.h>
#include <cudnn.h>
#include <gtest/gtest.h>
#include <nccl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "engine/device/backend.h"
#include "engine/device/device_buffer.h"
#include "kernels/activation.h"
#include "kernels/conv.h"
#include "kernels/convert.h"
#include "kernels/crop.h"
#include "kernels/dropout.h"
#include "kernels/base/half.h"
#include "kernels/maxpool.h"
#include "kernels/norm.h"
#include "kernels/upconv.h"
#include "tests/gpu/gpu_test.h"
#include "tests/gradcheck.h"

namespace unet {
namespace {

using test::download;
using test::random_vector;
using test::upload;

class GpuPrecision : public ::testing::Test {
 protected:
  void SetUp() override { UNET_GPU_OR_SKIP("the kernels in tf32, bf16 and fp16"); }
};

float round_to(float v, DType t) {
  return t == DType::bf16 ? bf16_to_float(bf16_from_float(v)) : t == DType::f16 ? f16_to_float(f16_from_float(v)) : v;
}

// A tensor's values as the GPU holds them in type `t`: `exact` the floats they
// stand for (the CPU's inputs), `dev` the device copy in `t`.
struct Typed {
  std::vector<float> exact;
  DeviceBuffer<uint16_t> dev;
  DType type;
  Tensor tensor(const Shape& s) const { return Tensor(dev.data(), s, s.sample(), type); }
};

Typed typed(const std::vector<float>& v, DType t) {
  Typed r{v, DeviceBuffer<uint16_t>(v.size()), t};
  std::vector<uint16_t> bits(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    bits[i] = t == DType::bf16 ? bf16_from_float(v[i]) : f16_from_float(v[i]);
    r.exact[i] = round_to(v[i], t);
  }
  r.dev.copy_from_host(bits.data(), nullptr);
  return r;
}

std::vector<float> values(const Typed& t) {
  const std::vector<uint16_t> bits = download(t.dev);
  std::vector<float> v(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) v[i] = t.type == DType::bf16 ? bf16_to_float(bits[i]) : f16_to_float(bits[i]);
  return v;
}

std::vector<float> rounded(std::vector<float> v, DType t) {
  for (float& x : v) x = round_to(x, t);
  return v;
}

double tolerance(DType t) { return t == DType::bf16 ? 2e-2 : 4e-3; }

// max |gpu - cpu| <= tol x max |cpu|, named on failure.
void expect_close(const std::vector<float>& gpu, const std::vector<float>& cpu, double tol, const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  double scale = 1e-6, worst = 0;
  for (float v : cpu) scale = std::max(scale, double(std::fabs(v)));
  for (size_t i = 0; i < cpu.size(); ++i) worst = std::max(worst, double(std::fabs(gpu[i] - cpu[i])));
  EXPECT_LE(worst, tol * scale) << what << ": max difference " << worst << " against magnitude " << scale;
  EXPECT_FALSE(std::any_of(gpu.begin(), gpu.end(), [](float v) { return std::isnan(v); })) << what;
}

struct ConvCase {
  Shape in;
  int64_t co;
  ConvSpec spec;
};
const ConvCase kConvCases[] = {{shape2d(2, 8, 17, 19), 16, {3, Padding::same}},
                               {shape2d(2, 16, 16, 16), 8, {3, Padding::valid}},
                               {shape2d(2, 16, 12, 12), 3, {1, Padding::same}},
                               {shape3d(2, 8, 7, 8, 9), 8, {3, Padding::same}}};

// A convolution's output and gradients (dx, dw, dbias).
struct ConvResult {
  std::vector<float> y, dx, dw, db;
};

// The CPU's forward and backward (dx overwritten, dw from 0, dbias from db0) of case k on these values.
ConvResult cpu_conv(const ConvCase& k, std::vector<float> x, std::vector<float> w, const std::vector<float>& b,
                    std::vector<float> dy, float db0) {
  const Shape out = conv_output_shape(k.in, k.co, k.spec);
  ConvResult r{std::vector<float>(out.count()), std::vector<float>(k.in.count()), std::vector<float>(w.size(), 0.f),
               std::vector<float>(k.co, db0)};
  std::vector<float> ws(static_cast<size_t>(conv_workspace_floats(k.in, k.co, k.spec)));
  conv_forward(Tensor(x.data(), k.in), w.data(), b.data(), Tensor(r.y.data(), out), k.spec, ws.data());
  conv_backward(Tensor(x.data(), k.in), w.data(), Tensor(dy.data(), out), Tensor(r.dx.data(), k.in), r.dw.data(),
                r.db.data(), k.spec, GradMode::overwrite, ws.data());
  return r;
}

void expect_conv_close(const ConvResult& gpu, const ConvResult& cpu, double tol, double bias_tol,
                       const std::string& what) {
  expect_close(gpu.y, cpu.y, tol, what + " y");
  expect_close(gpu.dx, cpu.dx, tol, what + " dx");
  expect_close(gpu.dw, cpu.dw, tol, what + " dw");
  expect_close(gpu.db, cpu.db, bias_tol, what + " dbias");
}

TEST_F(GpuPrecision, CudnnConvolutionMatchesCpuInTf32) {
  cudnnHandle_t handle;
  UNET_CUDNN_CHECK(cudnnCreate(&handle));
  for (const ConvCase& k : kConvCases) {
    const Shape out = conv_output_shape(k.in, k.co, k.spec);
    const int64_t wn = k.co * k.in.c * k.spec.kernel * k.spec.kernel * (k.in.dims == 3 ? k.spec.kernel : 1);
    auto x = random_vector(k.in.count(), 1), w = random_vector(wn, 2), b = random_vector(k.co, 3);
    auto dy = random_vector(out.count(), 4);
    std::vector<float> y(out.count()), dx(k.in.count()), dw(wn, 0.f), db(k.co, 0.f);
    auto gx = upload(x), gw = upload(w), gb = upload(b), gy = upload(y), gdy = upload(dy), gdx = upload(dx),
         gdw = upload(dw), gdb = upload(db);
    ConvCudnn conv(handle, k.in, k.co, k.spec, /*tf32=*/true);
    DeviceBuffer<uint8_t> gws(conv.workspace_bytes());
    conv.forward(Tensor(gx.data(), k.in), gw.data(), gb.data(), Tensor(gy.data(), out), gws.data(), nullptr);
    conv.backward(Tensor(gx.data(), k.in), gw.data(), Tensor(gdy.data(), out), Tensor(gdx.data(), k.in), gdw.data(),
                  gdb.data(), GradMode::overwrite, gws.data(), nullptr);
    expect_conv_close({download(gy), download(gdx), download(gdw), download(gdb)}, cpu_conv(k, x, w, b, dy, 0.f), 1e-2,
                      1e-4, "tf32 conv " + k.in.str());
  }
  UNET_CUDNN_CHECK(cudnnDestroy(handle));
}

TEST_F(GpuPrecision, CudnnConvolutionMatchesCpuIn16Bits) {
  cudnnHandle_t handle;
  UNET_CUDNN_CHECK(cudnnCreate(&handle));
  for (DType t : {DType::bf16, DType::f16})
    for (const ConvCase& k : kConvCases) {
      const Shape out = conv_output_shape(k.in, k.co, k.spec);
      const int64_t wn = k.co * k.in.c * k.spec.kernel * k.spec.kernel * (k.in.dims == 3 ? k.spec.kernel : 1);
      const Typed x = typed(random_vector(k.in.count(), 11), t), w = typed(random_vector(wn, 12), t);
      const Typed dy = typed(random_vector(out.count(), 13), t);
      Typed y = typed(std::vector<float>(out.count()), t), dx = typed(std::vector<float>(k.in.count()), t);
      Typed dw = typed(std::vector<float>(wn), t);
      const auto b = random_vector(k.co, 14);
      std::vector<float> db(k.co, 0.5f);
      auto gb = upload(b), gdb = upload(db);
      ConvCudnn conv(handle, k.in, k.co, k.spec, false, false, {}, t);
      DeviceBuffer<uint8_t> gws(conv.workspace_bytes());
      conv.forward(x.tensor(k.in), w.dev.data(), gb.data(), y.tensor(out), gws.data(), nullptr);
      // A 16-bit dw is overwritten (the caller adds it into its fp32 gradient); dbias accumulates in fp32.
      conv.backward(x.tensor(k.in), w.dev.data(), dy.tensor(out), dx.tensor(k.in), dw.dev.data(), gdb.data(),
                    GradMode::overwrite, gws.data(), nullptr);
      expect_conv_close({values(y), values(dx), values(dw), download(gdb)},
                        cpu_conv(k, x.exact, w.exact, b, dy.exact, 0.5f), tolerance(t), 1e-3,
                        std::string(dtype_name(t)) + " conv " + k.in.str());
    }
  UNET_CUDNN_CHECK(cudnnDestroy(handle));
}

TEST_F(GpuPrecision, UpConvolutionMatchesCpuIn16Bits) {
  cublasHandle_t handle;
  UNET_CUBLAS_CHECK(cublasCreate(&handle));
  for (DType t : {DType::bf16, DType::f16})
    for (auto [in, co] : {std::pair{shape2d(2, 16, 5, 7), int64_t(8)}, std::pair{shape3d(2, 8, 3, 4, 5), int64_t(4)}}) {
      const Shape out = upconv_output_shape(in, co);
      const int64_t wn = upconv_weight_count(in, co);
      const Typed x = typed(random_vector(in.count(), 21), t), w = typed(random_vector(wn, 22), t);
      const Typed dy = typed(random_vector(out.count(), 23), t);
      Typed y = typed(std::vector<float>(out.count()), t), dx = typed(random_vector(in.count(), 24), t);
      const auto b = random_vector(co, 25);
      std::vector<float> dw(wn, 0.5f), db(co, -0.5f);
      auto gb = upload(b), gdw = upload(dw), gdb = upload(db);
      DeviceBuffer<float> gws(static_cast<size_t>(upconv_workspace_floats_cuda(in, co)));
      upconv_forward_cuda(handle, x.tensor(in), w.dev.data(), gb.data(), y.tensor(out), gws.data(), nullptr);
      upconv_backward_cuda(handle, x.tensor(in), w.dev.data(), dy.tensor(out), dx.tensor(in), gdw.data(), gdb.data(),
                           GradMode::accumulate, gws.data(), nullptr);

      std::vector<float> cy(out.count()), cdx = dx.exact;
      std::vector<float> ws(static_cast<size_t>(upconv_workspace_floats(in, co)));
      auto cx = x.exact, cw = w.exact, cdy = dy.exact;
      upconv_forward(Tensor(cx.data(), in), cw.data(), b.data(), Tensor(cy.data(), out), ws.data());
      upconv_backward(Tensor(cx.data(), in), cw.data(), Tensor(cdy.data(), out), Tensor(cdx.data(), in), dw.data(),
                      db.data(), GradMode::accumulate, ws.data());
      const std::string what = std::string(dtype_name(t)) + " upconv " + in.str();
      expect_close(values(y), cy, tolerance(t), what + " y");
      expect_close(values(dx), cdx, tolerance(t), what + " dx (accumulated)");
      expect_close(download(gdw), dw, 1e-3, what + " dw (fp32)");
      expect_close(download(gdb), db, 1e-3, what + " dbias (fp32)");
    }
  UNET_CUBLAS_CHECK(cublasDestroy(handle));
}

// Moves and one multiplication: the GPU's 16-bit result is the CPU's fp32 result rounded, bit for bit.
TEST_F(GpuPrecision, PoolingCroppingAndDropoutOn16BitsAreTheCpusRounded) {
  for (DType t : {DType::bf16, DType::f16}) {
    const std::string type = dtype_name(t);
    for (Shape in : {shape2d(2, 3, 9, 11), shape3d(2, 2, 5, 6, 7)}) {
      const Shape out = maxpool_output_shape(in);
      const Typed x = typed(random_vector(in.count(), 31), t), dy = typed(random_vector(out.count(), 32), t);
      Typed y = typed(std::vector<float>(out.count()), t), dx = typed(random_vector(in.count(), 33), t);
      DeviceBuffer<uint8_t> garg(static_cast<size_t>(out.count()));
      std::vector<float> cy(out.count()), cdx = dx.exact, cx = x.exact, cdy = dy.exact;
      std::vector<uint8_t> arg(out.count());
      maxpool_forward_cuda(x.tensor(in), y.tensor(out), garg.data(), nullptr);
      maxpool_forward(Tensor(cx.data(), in), Tensor(cy.data(), out), arg.data());
      EXPECT_EQ(values(y), cy) << type << " maxpool " << in.str();
      EXPECT_EQ(download(garg), arg) << type << " maxpool argmax " << in.str();
      maxpool_backward_cuda(dy.tensor(out), garg.data(), dx.tensor(in), GradMode::accumulate, nullptr);
      maxpool_backward(Tensor(cdy.data(), out), arg.data(), Tensor(cdx.data(), in), GradMode::accumulate);
      EXPECT_EQ(values(dx), rounded(cdx, t)) << type << " maxpool dx (accumulated) " << in.str();
    }
    {
      const Shape big = shape2d(2, 3, 12, 13), small = shape2d(2, 3, 7, 8);
      const Typed x = typed(random_vector(big.count(), 34), t);
      Typed y = typed(std::vector<float>(small.count()), t), dx = typed(random_vector(big.count(), 35), t);
      std::vector<float> cx = x.exact, cy(small.count()), cdx = dx.exact;
      crop_forward_cuda(x.tensor(big), y.tensor(small), nullptr);
      crop_forward(Tensor(cx.data(), big), Tensor(cy.data(), small));
      EXPECT_EQ(values(y), cy) << type << " crop";
      crop_backward_cuda(y.tensor(small), dx.tensor(big), GradMode::accumulate, nullptr);
      crop_backward(Tensor(cy.data(), small), Tensor(cdx.data(), big), GradMode::accumulate);
      EXPECT_EQ(values(dx), rounded(cdx, t)) << type << " crop dx (accumulated)";
    }
    {
      const Shape s = shape3d(3, 2, 4, 5, 6);
      const DropoutSpec spec{0.3f, 42, 7, 5};
      const Typed x = typed(random_vector(s.count(), 36), t);
      Typed y = typed(std::vector<float>(s.count()), t), dx = typed(std::vector<float>(s.count()), t);
      std::vector<float> cx = x.exact, cy(s.count()), cdx(s.count());
      dropout_forward_cuda(x.tensor(s), y.tensor(s), spec, nullptr);
      dropout_forward(Tensor(cx.data(), s), Tensor(cy.data(), s), spec);
      EXPECT_EQ(values(y), rounded(cy, t)) << type << " dropout";
      std::vector<float> cdy = rounded(cy, t);  // y, as the GPU holds it, serves as the gradient
      dropout_backward_cuda(y.tensor(s), dx.tensor(s), spec, nullptr);
      dropout_backward(Tensor(cdy.data(), s), Tensor(cdx.data(), s), spec);
      EXPECT_EQ(values(dx), rounded(cdx, t)) << type << " dropout dx";
    }
  }
}

TEST_F(GpuPrecision, NormsMatchCpuOn16Bits) {
  for (DType t : {DType::bf16, DType::f16})
    for (NormKind kind : {NormKind::batch, NormKind::instance})
      for (Shape s : {shape2d(3, 4, 9, 11), shape3d(2, 3, 5, 6, 7)}) {
        const NormSpec spec{kind, 1e-5f, 0.1f};
        const int64_t groups = norm_groups(kind, s);
        const std::string what = std::string(dtype_name(t)) + (kind == NormKind::batch ? " batch " : " instance ") +
                                 s.str();
        const Typed x = typed(random_vector(s.count(), 40, -2.f, 3.f), t), dy = typed(random_vector(s.count(), 41), t);
        Typed y = typed(std::vector<float>(s.count()), t), dx = typed(std::vector<float>(s.count()), t);
        auto gamma = random_vector(s.c, 42, 0.5f, 1.5f), beta = random_vector(s.c, 43);
        std::vector<float> mean(groups), invstd(groups), rm(s.c, 0.f), rv(s.c, 1.f), dgamma(s.c, 0.f), dbeta(s.c, 0.f);
        auto ggamma = upload(gamma), gbeta = upload(beta), gmean = upload(mean), ginvstd = upload(invstd),
             grm = upload(rm), grv = upload(rv), gdgamma = upload(dgamma), gdbeta = upload(dbeta);
        DeviceBuffer<double> ws(static_cast<size_t>(3 * groups));
        norm_forward_train_cuda(x.tensor(s), y.tensor(s), ggamma.data(), gbeta.data(), gmean.data(), ginvstd.data(),
                                grm.data(), grv.data(), spec, ws.data(), nullptr);
        norm_backward_cuda(x.tensor(s), dy.tensor(s), dx.tensor(s), ggamma.data(), gmean.data(), ginvstd.data(),
                           gdgamma.data(), gdbeta.data(), spec, ws.data(), nullptr);
        std::vector<float> cx = x.exact, cdy = dy.exact, cy(s.count()), cdx(s.count());
        norm_forward_train(Tensor(cx.data(), s), Tensor(cy.data(), s), gamma.data(), beta.data(), mean.data(),
                           invstd.data(), rm.data(), rv.data(), spec);
        norm_backward(Tensor(cx.data(), s), Tensor(cdy.data(), s), Tensor(cdx.data(), s), gamma.data(), mean.data(),
                      invstd.data(), dgamma.data(), dbeta.data(), spec);
        expect_close(values(y), cy, tolerance(t), what + " y");
        expect_close(values(dx), cdx, tolerance(t), what + " dx");
        expect_close(download(grm), rm, 1e-5, what + " running mean");
        expect_close(download(grv), rv, 1e-5, what + " running var");
        expect_close(download(gdgamma), dgamma, 1e-4, what + " dgamma");
        expect_close(download(gdbeta), dbeta, 1e-4, what + " dbeta");
      }
}

// 2 x 32768 x 32769 bf16 values: 2^31 + 65536 elements, 16 times the capped
// grid's threads, so every thread's loop runs on and the last elements sit past
// 2^31 (a 32-bit index would wrap and leave them unwritten). The input is one
// value and the two channels' biases differ, so an unwritten element, or one
// given the wrong channel's bias, shows.
TEST_F(GpuPrecision, ElementwiseKernelsReachPastTheGridCapAnd2To31Elements) {
  const Shape s = shape2d(1, 2, 32768, 32769);
  ASSERT_GT(s.count(), int64_t(1) << 31);
  DeviceBuffer<uint16_t> y(static_cast<size_t>(s.count()));
  UNET_CUDA_CHECK(cudaMemset(y.data(), 0x3f, y.bytes()));  // every value bf16 0x3f3f
  const float x = bf16_to_float(0x3f3f);
  const std::vector<float> bias{1.f, -3.f};
  auto gbias = upload(bias);
  bias_act_forward_cuda(Tensor(y.data(), s, s.sample(), DType::bf16), gbias.data(), {Activation::leaky_relu, 0.01f},
                        nullptr);
  UNET_CUDA_CHECK(cudaDeviceSynchronize());
  const float want[2] = {round_to(activate(x + bias[0], Activation::leaky_relu, 0.01f), DType::bf16),
                         round_to(activate(x + bias[1], Activation::leaky_relu, 0.01f), DType::bf16)};
  ASSERT_NE(want[0], x);
  ASSERT_NE(want[1], x);
  // Probes: the start, both sides of the channel boundary and of 2^31, the last elements, and a stride between.
  std::vector<int64_t> probes{0, 1, s.spatial() - 1, s.spatial(), (int64_t(1) << 31) - 1, int64_t(1) << 31};
  for (int64_t i = s.count() - 1000; i < s.count(); ++i) probes.push_back(i);
  for (int64_t i = 0; i < s.count(); i += 99991 * 13) probes.push_back(i);
  for (int64_t i : probes) {
    uint16_t bits = 0;
    UNET_CUDA_CHECK(cudaMemcpy(&bits, y.data() + i, 2, cudaMemcpyDeviceToHost));
    ASSERT_EQ(bf16_to_float(bits), want[i / s.spatial()]) << "element " << i;
  }
}

// allocate() zeroes on the compute stream and stage() copies on the copy
// stream: with the compute stream held up (a host callback sleeping on it),
// the staged batch must still land after the zeroing, not under it.
TEST_F(GpuPrecision, ABatchStagedRightAfterItsBufferIsAllocatedLands) {
  auto be = cuda_backend(0, Precision::fp32);
  UNET_CUDA_CHECK(cudaLaunchHostFunc(
      be->stream(), [](void*) { std::this_thread::sleep_for(std::chrono::milliseconds(300)); }, nullptr));
  const std::vector<float> batch = random_vector(int64_t(1) << 22, 50);
  const int64_t bytes = int64_t(batch.size() * sizeof(float));
  Backend::Memory m = be->allocate(bytes);
  be->begin_batch();
  be->stage(m.get(), batch.data(), bytes);
  be->wait_staged();
  std::vector<float> back(batch.size());
  be->download(back.data(), m.get(), bytes);
  EXPECT_EQ(back, batch);
}

// The versions the whole check ran with, in the gtest XML and on stdout (for
// tools/gpu_suite.sh's table); the driver must serve this CUDA runtime, and the
// cuDNN and NCCL loaded must be the major versions compiled against.
TEST(GpuEnvironment, ReportsTheDeviceAndLibraryVersions) {
  UNET_GPU_OR_SKIP("the device and its libraries");
  cudaDeviceProp prop{};
  UNET_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  int driver = 0, runtime = 0, cublas = 0, nccl = 0;
  UNET_CUDA_CHECK(cudaDriverGetVersion(&driver));
  UNET_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  cublasHandle_t handle;
  UNET_CUBLAS_CHECK(cublasCreate(&handle));
  UNET_CUBLAS_CHECK(cublasGetVersion(handle, &cublas));
  UNET_CUBLAS_CHECK(cublasDestroy(handle));
  ASSERT_EQ(ncclGetVersion(&nccl), ncclSuccess);
  const size_t cudnn = cudnnGetVersion();
  const std::string line = std::string(prop.name) + " sm_" + std::to_string(prop.major) + std::to_string(prop.minor) +
                           ", " + std::to_string(prop.totalGlobalMem >> 20) + " MiB; driver CUDA " +
                           std::to_string(driver) + ", runtime " + std::to_string(runtime) + ", cuDNN " +
                           std::to_string(cudnn) + ", cuBLAS " + std::to_string(cublas) + ", NCCL " +
                           std::to_string(nccl);
  std::printf("versions: %s\n", line.c_str());
  RecordProperty("versions", line);
  EXPECT_GE(driver, runtime) << "the driver is older than the CUDA runtime the tests were built with";
  EXPECT_EQ(cudnn / 10000, size_t(CUDNN_MAJOR)) << "cuDNN loaded: " << cudnn;
  EXPECT_EQ(nccl / 10000, NCCL_MAJOR) << "NCCL loaded: " << nccl;
}

}  // namespace
}  // namespace unet
