// Which of OpenBLAS's kernels the CPU runs. OpenBLAS picks them by CPU model
// when it loads; Debian's 0.3.21 does not know current Xeons (Emerald Rapids)
// and silently runs its Prescott (SSE3) kernels there, 8.6x slower than its
// SkylakeX ones (issue 17's measurement). Nothing here trusts a model number:
// the right core follows from the instruction sets the CPU reports.
#pragma once

#include <string>

namespace unet {

struct BlasCore {
  std::string running;  // openblas_get_corename()
  std::string best;     // the core this CPU's instruction sets allow: SkylakeX (AVX-512), Haswell (AVX2 + FMA)
  bool fallback = false;  // running has no AVX2 kernels on a CPU that has AVX2
};
BlasCore blas_core();

// Where OpenBLAS fell back and OPENBLAS_CORETYPE is unset: sets it to the best
// core, says so once on stderr, and re-executes this program (argv) so that
// OpenBLAS loads with it. Where OPENBLAS_CORETYPE names a fallback itself, it
// is kept and the line says what to set instead. Returns when there is nothing
// to do (or the re-execution failed, which it says).
void use_best_blas_core(char** argv);

}  // namespace unet
