// A stand-in for OpenBLAS's core report, preloaded (LD_PRELOAD) by
// test_blas_core: it says what OPENBLAS_CORETYPE says, and without it
// "Prescott", as Debian's OpenBLAS 0.3.21 does on a CPU it does not know.
#include <cstdlib>

extern "C" char* openblas_get_corename(void) {
  static char prescott[] = "Prescott";
  char* set = std::getenv("OPENBLAS_CORETYPE");
  return set && *set ? set : prescott;
}
