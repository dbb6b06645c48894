#include "engine/device/blas_core.h"

#include <cblas.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace unet {
namespace {

// OpenBLAS's x86 cores with AVX2 kernels (its names, as openblas_get_corename
// gives them); every other core it may fall back to (Prescott, Core2, Nehalem,
// Sandybridge, Barcelona, ...) has none.
bool has_avx2_kernels(const std::string& core) {
  for (const char* c : {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"})
    if (strcasecmp(core.c_str(), c) == 0) return true;
  return false;
}

}  // namespace

BlasCore blas_core() {
  BlasCore b;
  const char* name = openblas_get_corename();
  b.running = name ? name : "";
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  b.best = avx512 ? "SkylakeX" : avx2 ? "Haswell" : b.running;
  b.fallback = avx2 && !has_avx2_kernels(b.running);
  return b;
}

void use_best_blas_core(char** argv) {
  const BlasCore b = blas_core();
  if (!b.fallback) return;
  const char* set = std::getenv("OPENBLAS_CORETYPE");
  if (set && *set) {
    std::fprintf(stderr,
                 "unet: OPENBLAS_CORETYPE=%s runs OpenBLAS's %s kernels on a CPU with AVX2%s; set "
                 "OPENBLAS_CORETYPE=%s (or unset it) for its fast ones\n",
                 set, b.running.c_str(), b.best == "SkylakeX" ? " and AVX-512" : "", b.best.c_str());
    return;
  }
  std::fprintf(stderr, "unet: OpenBLAS chose its %s kernels for this CPU (it does not know the model); running with "
               "OPENBLAS_CORETYPE=%s, the %s ones its instruction sets allow\n",
               b.running.c_str(), b.best.c_str(), b.best.c_str());
  setenv("OPENBLAS_CORETYPE", b.best.c_str(), 1);
  execv("/proc/self/exe", argv);
  std::fprintf(stderr, "unet: could not restart with OPENBLAS_CORETYPE=%s (%s); set it yourself\n", b.best.c_str(),
               std::strerror(errno));
}

}  // namespace unet
