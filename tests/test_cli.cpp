// The `unet` binary end to end: what a user types and what comes back.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/run_binary.h"
#ifdef UNET_CUDA
#include "engine/device/device_buffer.h"
#endif

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const std::string kData = std::string(UNET_SOURCE_DIR) + "/../shared/datasets/";

using unet::test::Result;

Result run(const std::string& args, const std::string& prefix = "") { return unet::test::run_unet(args, prefix); }

size_t lines(const std::string& s) { return size_t(std::count(s.begin(), s.end(), '\n')); }

TEST(Cli, HelpExitsZero) {
  const Result r = run("--help");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("info"));
}

TEST(Cli, NoSubcommandFails) { EXPECT_NE(run("").status, 0); }

// Asking for a GPU where there is none, or for what is not built, says so and
// what to do instead.
TEST(Cli, GpuOptionsRefuseWhatCannotRunAndSayWhy) {
#ifdef UNET_CUDA
  if (unet::cuda_device_count() > 0) GTEST_SKIP() << "a GPU is present: tests/gpu runs --gpus 1 for real";
  const char* no_gpu = "no CUDA GPU on this machine";
#else
  const char* no_gpu = "built without the CUDA backend";
#endif
  const std::string dir = ::testing::TempDir() + "unet_test_cli_gpu_" + std::to_string(::getpid());
  for (const std::string& args :
       {"train --steps 1 -o '" + dir + "' --gpus 1", std::string("bench --size 64x64 --depth 2 --steps 1 --gpus 1")}) {
    const Result r = run(args);
    EXPECT_NE(r.status, 0) << r.out;
    EXPECT_THAT(r.out, HasSubstr(no_gpu));
    EXPECT_THAT(r.out, HasSubstr("--gpus 0"));
  }
  Result r = run("bench --gpus 2");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.out, HasSubstr("one process drives one GPU"));
  r = run("bench --precision fp16 --size 64x64 --depth 2");  // fp16 is the GPU's
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.out, HasSubstr("the CPU has no fp16 convolutions; use --precision bf16 or fp32"));
  r = run("bench --precision bf16 --size 64x64 --depth 2", "export UNET_CPU_CONV=im2col");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.out, HasSubstr("the im2col reference multiplies in fp32"));
  r = run("bench --size 64x64 --depth 2", "export UNET_CPU_CONV=fast");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.out, HasSubstr("UNET_CPU_CONV=fast: expected onednn"));
  r = run("bench --precision fp64");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.out, HasSubstr("--precision"));
  fs::remove_all(dir);
}

// A batch the machine cannot hold is refused before anything is allocated,
// naming the largest batch that fits.
TEST(Cli, BatchTooLargeForTheMachineNamesTheBatchThatFits) {
  const Result r = run("bench --size 512x512 --batch-size 1000000");
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("a batch of 1000000 needs"));
  EXPECT_THAT(r.out, HasSubstr("The largest batch that fits is"));
  EXPECT_THAT(r.out, HasSubstr("lower --batch-size"));
}

TEST(Cli, InfoOnIsbiSlice) {
  const std::string path = kData + "isbi2012/train/image/0.png";
  if (!fs::exists(path)) GTEST_SKIP() << path << " absent (../shared/datasets not mounted)";
  const Result r = run("info '" + path + "'");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("512 x 512"));
  EXPECT_THAT(r.out, HasSubstr("uint8"));
  EXPECT_THAT(r.out, HasSubstr("spacing:     1 x 1"));
}

TEST(Cli, InfoOnLungVolume) {
  const std::string path = kData + "lung3d/id001-128x128x64.nii.gz";
  if (!fs::exists(path)) GTEST_SKIP() << path << " absent (../shared/datasets not mounted)";
  const Result r = run("info '" + path + "'");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("128 x 128 x 64"));
  EXPECT_THAT(r.out, HasSubstr("3.00781 x 3.00781 x 5 mm"));
  EXPECT_THAT(r.out, HasSubstr("LAS"));
  EXPECT_THAT(r.out, HasSubstr("affine"));
}

TEST(Cli, InfoOnBrokenFileSaysWhyInOneLine) {
  const std::string dir = ::testing::TempDir() + "unet_test_cli_" + std::to_string(::getpid());
  fs::create_directories(dir);
  for (const char* name : {"broken.nii", "broken.png", "broken.nii.gz"}) {
    const std::string path = dir + "/" + name;
    std::ofstream(path) << std::string(400, 'x');
    const Result r = run("info '" + path + "'");
    EXPECT_NE(r.status, 0) << r.out;
    EXPECT_EQ(lines(r.out), 1u) << r.out;
    EXPECT_THAT(r.out, HasSubstr(path));
  }
  const Result missing = run("info '" + dir + "/missing.png'");
  EXPECT_NE(missing.status, 0);
  EXPECT_EQ(lines(missing.out), 1u) << missing.out;
  EXPECT_THAT(missing.out, HasSubstr("missing.png: cannot open"));
  fs::remove_all(dir);
}

TEST(Cli, InfoReportsEveryFileAndFailsIfAnyFails) {
  const std::string path = kData + "isbi2012/train/label/0.png";
  if (!fs::exists(path)) GTEST_SKIP() << path << " absent (../shared/datasets not mounted)";
  const Result r = run("info '" + path + "' /nonexistent/x.nii");
  EXPECT_NE(r.status, 0);
  EXPECT_THAT(r.out, HasSubstr("512 x 512"));
  EXPECT_THAT(r.out, HasSubstr("/nonexistent/x.nii: cannot open"));
}

}  // namespace
