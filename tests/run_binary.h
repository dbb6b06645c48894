// Running the `unet` binary (UNET_BINARY, set by CMake; the environment's
// UNET_BINARY instead where set, as for tests carried to another machine by
// tools/gpu_suite.sh) or any shell command as a user would, collecting the
// exit status and output.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

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
inline std::string unet_binary() {
  const char* carried = std::getenv("UNET_BINARY");
  return carried && *carried ? carried : UNET_BINARY;
}

inline Result run_unet(const std::string& args, const std::string& prefix = "") {
  return run_shell(prefix + (prefix.empty() ? "" : "; ") + "'" + unet_binary() + "' " + args);
}

// Starts the binary with `args` (split at spaces) in the background, its
// output to `log`; returns its pid, for signals and waitpid.
inline pid_t spawn_unet(const std::string& args, const std::string& log) {
  std::vector<std::string> words{unet_binary()};
  for (size_t i = 0, j; i < args.size(); i = j + 1) {
    j = args.find(' ', i);
    if (j == std::string::npos) j = args.size();
    if (j > i) words.push_back(args.substr(i, j - i));
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::FILE* f = std::freopen(log.c_str(), "w", stdout);
    (void)f;
    ::dup2(::fileno(stdout), 2);
    std::vector<char*> argv;
    for (std::string& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

}  // namespace unet::test
