// Running the `unet` binary (UNET_BINARY, set by CMake) or any shell command as
// a user would, collecting the exit status and output.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace unet::test {

struct Result {
  int status = -1;  // the exit status; -1 when killed by a signal
  std::string out;  // stdout and stderr together
};

inline Result run_shell(const std::string& command) {
  Result r;
  FILE* p = ::popen((command + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// `prefix` runs before the binary in the same shell (ulimit, trap, cd).
inline Result run_unet(const std::string& args, const std::string& prefix = "") {
  return run_shell(prefix + (prefix.empty() ? "" : "; ") + "'" + std::string(UNET_BINARY) + "' " + args);
}

}  // namespace unet::test
