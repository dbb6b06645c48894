// No silent slow path: the `unet` binary runs OpenBLAS kernels that use the
// CPU's AVX2 (and AVX-512) where it has them. Where OpenBLAS falls back (made
// to, here, by a preloaded stand-in that reports Prescott, as Debian's 0.3.21
// does on an Emerald Rapids Xeon), unet says so once and restarts with the
// right OPENBLAS_CORETYPE; one the user set is kept, with the fix named.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/device/blas_core.h"
#include "tests/run_binary.h"

namespace unet {
namespace {

const char* kBench = "bench --size 32x32 --depth 1 --start-filters 2 --steps 1 --warmup 0 2>&1";

std::string bench_core(const test::Result& r) {
  const size_t at = r.out.find("{\"arena_mib\"");
  if (at == std::string::npos) return "";
  return nlohmann::json::parse(r.out.substr(at, r.out.find('\n', at) - at)).value("blas_core", "");
}

bool cpu_has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }

TEST(BlasCore, TheBinaryRunsKernelsForThisCpusInstructionSets) {
  const test::Result r = test::run_unet(kBench, "unset OPENBLAS_CORETYPE");
  ASSERT_EQ(r.status, 0) << r.out;
  const std::string core = bench_core(r);
  ASSERT_FALSE(core.empty()) << r.out;
  std::printf("OpenBLAS core: %s (best for this CPU: %s)\n", core.c_str(), blas_core().best.c_str());
  if (cpu_has_avx2())
    for (const char* slow : {"Prescott", "Core2", "Penryn", "Nehalem", "Sandybridge", "Atom", "Barcelona"})
      EXPECT_NE(core, slow) << "OpenBLAS runs a fallback core on a CPU with AVX2";
}

TEST(BlasCore, AFallbackIsNamedAndReplaced) {
  if (!cpu_has_avx2()) GTEST_SKIP() << "this CPU has no AVX2: Prescott may be its right core";
  // Under AddressSanitizer its runtime must come first unless told not to check.
  const std::string preload = "unset OPENBLAS_CORETYPE; export ASAN_OPTIONS=verify_asan_link_order=0:$ASAN_OPTIONS; "
                              "export LD_PRELOAD=" + std::string(UNET_FAKE_CORE);
  const test::Result r = test::run_unet(kBench, preload);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("OpenBLAS chose its Prescott kernels"), std::string::npos) << r.out;
  EXPECT_EQ(bench_core(r), blas_core().best) << r.out;

  const test::Result kept = test::run_unet(kBench, "export OPENBLAS_CORETYPE=Prescott");
  ASSERT_EQ(kept.status, 0) << kept.out;
  EXPECT_EQ(bench_core(kept), "Prescott");
  EXPECT_NE(kept.out.find("set OPENBLAS_CORETYPE=" + blas_core().best), std::string::npos) << kept.out;
}

}  // namespace
}  // namespace unet
