#include "io/fault_injection.h"

#include <signal.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace unet {
namespace {

struct Fault {
  std::string point, action = "fail";
  long n = 0;  // 0: no fault configured
};

Fault configured() {
  Fault f;
  const char* spec = std::getenv("UNET_FAULT");
  if (!spec || !*spec) return f;
  const std::string s = spec;
  const size_t a = s.find(':'), b = s.find(':', a == std::string::npos ? a : a + 1);
  f.point = s.substr(0, a);
  if (a != std::string::npos) f.n = std::strtol(s.substr(a + 1, b - a - 1).c_str(), nullptr, 10);
  if (b != std::string::npos) f.action = s.substr(b + 1);
  if (f.n < 1 || (f.action != "fail" && f.action != "term" && f.action != "kill")) {
    std::fprintf(stderr, "UNET_FAULT=%s: expected <point>:<n>[:fail|term|kill] with n >= 1; ignored\n", spec);
    f.n = 0;
  }
  return f;
}

}  // namespace

bool fault_at(const char* point) {
  static const Fault fault = configured();
  static std::atomic<long> passes{0};
  if (fault.n == 0 || fault.point != point || ++passes != fault.n) return false;
  std::fprintf(stderr, "UNET_FAULT: %s at pass %ld of fault point \"%s\"\n", fault.action.c_str(), fault.n, point);
  if (fault.action == "kill") ::raise(SIGKILL);
  if (fault.action == "term") return ::raise(SIGTERM), false;
  errno = ENOSPC;
  return true;
}

}  // namespace unet
