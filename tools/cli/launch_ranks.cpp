#include "tools/cli/launch_ranks.h"

#include <sched.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "engine/train/trainer.h"

namespace unet {
namespace {

std::atomic<int> g_forward{0};  // a signal to pass on to every rank
extern "C" void forward_signal(int sig) { g_forward = sig; }

// The cores this process may run on, in order.
std::vector<int> allowed_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (::sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) out.push_back(c);
  if (out.empty())
    for (int c = 0; c < int(std::thread::hardware_concurrency()); ++c) out.push_back(c);
  return out;
}

// Rank r's slice of the cores: an even share, or one core (shared) when there are more ranks than cores.
std::vector<int> slice(const std::vector<int>& cores, int ranks, int r) {
  const int n = int(cores.size());
  if (n < ranks) return {cores[r % n]};
  std::vector<int> mine;
  for (int c = r * n / ranks; c < (r + 1) * n / ranks; ++c) mine.push_back(cores[c]);
  return mine;
}

std::string how_it_ended(int status) {
  if (WIFSIGNALED(status))
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + strsignal(WTERMSIG(status)) + ")";
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

struct Rank {
  pid_t pid = -1;
  int status = 0;
  bool running = false;
};

pid_t start_rank(const std::vector<std::string>& argv, int ranks, int r, const std::string& job,
                 const std::vector<int>& cores) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // the launcher gone (killed): checkpoint and stop
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cores) CPU_SET(c, &set);
  ::sched_setaffinity(0, sizeof set, &set);
  // Slurm's variables come before RANK/WORLD_SIZE (communicator.h): under srun -n 1 they would make
  // each rank launch ranks of its own.
  for (const char* v : {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"}) ::unsetenv(v);
  ::setenv("RANK", std::to_string(r).c_str(), 1);
  ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
  ::setenv("WORLD_SIZE", std::to_string(ranks).c_str(), 1);
  ::setenv("UNET_JOB_ID", job.c_str(), 1);
  ::setenv("OMP_NUM_THREADS", std::to_string(cores.size()).c_str(), 1);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execv("/proc/self/exe", args.data());
  std::fprintf(stderr, "unet: rank %d: cannot start %s (%s)\n", r, argv[0].c_str(), std::strerror(errno));
  ::_exit(127);
}

}  // namespace

int launch_ranks(int ranks, const std::vector<std::string>& argv, const std::string& rendezvous_root) {
  const std::vector<int> cores = allowed_cores();
  const std::string job = "ranks-" + std::to_string(::getpid()) + "-" +
                          std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  if (int(cores.size()) < ranks)
    std::fprintf(stderr, "unet: --ranks %d on %zu core(s): ranks share cores and run slower than one process\n",
                 ranks, cores.size());
  // (^C reaches every rank of the terminal's process group by itself.)
  for (int sig : {SIGTERM, SIGUSR1}) std::signal(sig, forward_signal);
  std::vector<Rank> rank(ranks);
  for (int r = 0; r < ranks; ++r) {
    const std::vector<int> mine = slice(cores, ranks, r);
    rank[r].pid = start_rank(argv, ranks, r, job, mine);
    rank[r].running = rank[r].pid > 0;
    if (!rank[r].running) throw std::runtime_error("--ranks: cannot start rank " + std::to_string(r));
  }
  std::printf("--ranks %d: %zu core(s), %zu per rank\n", ranks, cores.size(), slice(cores, ranks, 0).size());
  std::fflush(stdout);

  int failed = -1, running = ranks;
  std::chrono::steady_clock::time_point kill_at{};
  while (running > 0) {
    if (const int sig = g_forward.exchange(0))
      for (const Rank& k : rank)
        if (k.running) ::kill(k.pid, sig);  // every rank stops after the same step
    for (int r = 0; r < ranks; ++r) {
      Rank& k = rank[r];
      if (!k.running || ::waitpid(k.pid, &k.status, WNOHANG) != k.pid) continue;
      k.running = false, --running;
      const bool ok = WIFEXITED(k.status) && (WEXITSTATUS(k.status) == 0 || WEXITSTATUS(k.status) == kExitPreempted);
      if (!ok && failed < 0) {
        failed = r;
        std::fprintf(stderr, "unet: rank %d of %d (pid %d) %s; ending the other ranks\n", r, ranks, int(k.pid),
                     how_it_ended(k.status).c_str());
        kill_at = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      }
    }
    // The others lose the failed rank at their next collective; one that does not end by then is killed.
    if (failed >= 0 && running > 0 && std::chrono::steady_clock::now() > kill_at)
      for (const Rank& k : rank)
        if (k.running) ::kill(k.pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::error_code ec;
  std::filesystem::remove_all(std::filesystem::path(rendezvous_root) / job, ec);
  if (failed >= 0) return 1;
  for (const Rank& k : rank)
    if (WEXITSTATUS(k.status) == kExitPreempted) return kExitPreempted;
  return 0;
}

}  // namespace unet
