// The fault-injection suite (ctest label "faults"): every fault a cluster
// produces, against a short run through the binary, and after each a restart
// in the same run folder that must end bit for bit at the uninterrupted run
// (the checkpoint's weights and optimizer state, the best weights, and the
// step losses of metrics.jsonl):
//   - kill -9 at seeded random moments, many times over;
//   - every step of writing (a file's write, flush and rename; a checkpoint
//     folder's creation, flush and rename; the latest link) in turn made to
//     fail as a full disk would, to SIGKILL the process, and to SIGTERM it;
//   - SIGTERM during validation;
//   - a read-only run folder and a full disk at start, refused before training;
//   - a rank killed in a two-rank run: the other ends at once, naming it.
// The hook is UNET_FAULT (io/fault_injection.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "engine/storage/safetensors.h"
#include "tests/files.h"
#include "tests/run_binary.h"

namespace unet {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// 12 steps, validations at 4, 8 and 12, the epoch's end at 10.
constexpr const char* kRun =
    "train --filters 4 --depth 2 --size 32x32 --batch-size 2 --workers 1 --steps 12 --val-every 4 --seed 2 ";

fs::path work(const std::string& name) { return test::work_dir("faults", name); }
using test::q;

// The short run in `run`, with `env` exported first and the binary started through `wrapper`.
test::Result train(const fs::path& run, const std::string& env = "", const std::string& wrapper = "") {
  return test::run_shell("export OMP_NUM_THREADS=1 " + env + "; " + wrapper + " '" + test::unet_binary() + "' " +
                         kRun + "--run-dir " + q(run));
}

// What a finished run leaves that a resume must reproduce exactly.
struct Outcome {
  std::vector<float> weights, state, best;
  std::vector<std::pair<int64_t, double>> losses;  // (step, loss) of every step line, in log order
  bool operator==(const Outcome& o) const {
    return weights == o.weights && state == o.state && best == o.best && losses == o.losses;
  }
};

Outcome outcome(const fs::path& run) {
  Outcome o;
  const fs::path latest = run / "checkpoints" / "latest";
  o.weights = test::all_weights((latest / "weights.safetensors").string());
  o.state = test::all_weights((latest / "state.safetensors").string());
  o.best = test::all_weights((run / "best.safetensors").string());
  std::ifstream log(run / "metrics.jsonl");
  for (std::string line; std::getline(log, line);) {
    const nlohmann::json j = nlohmann::json::parse(line);
    if (j.contains("loss")) o.losses.push_back({j["step"].get<int64_t>(), j["loss"].get<double>()});
  }
  return o;
}

const Outcome& uninterrupted() {
  static const Outcome o = [] {
    const fs::path run = work("straight");
    const test::Result r = train(run);
    EXPECT_EQ(r.status, 0) << r.out;
    return outcome(run);
  }();
  return o;
}

// Restarts until a run finishes (at most `limit`), then the outcome must be the uninterrupted one.
void expect_restart_ends_exact(const fs::path& run, const std::string& what) {
  const test::Result r = train(run);
  ASSERT_EQ(r.status, 0) << what << ": the restart failed\n" << r.out;
  const Outcome o = outcome(run);
  ASSERT_EQ(o.losses.size(), 12u) << what << ": every step logged once";
  EXPECT_TRUE(o == uninterrupted()) << what << ": the restarted run differs from the uninterrupted one";
}

TEST(Faults, UninterruptedRunIsTheReference) {
  const Outcome& o = uninterrupted();
  EXPECT_EQ(o.losses.size(), 12u);
  EXPECT_FALSE(o.weights.empty());
  EXPECT_FALSE(o.best.empty());
}

// kill -9 at seeded random points: after a random number of the log's lines
// (1 to 16 more than at the start, steps and validations: checkpoints come
// every 10 steps), then a random 0-30 ms
// more, so that kills land inside steps, validations and checkpoint writes
// alike. A kill before the first checkpoint restarts from scratch, a later one
// from the last checkpoint.
TEST(Faults, KillNineAtRandomPointsThenRestart) {
  const std::string args = "train --filters 4 --depth 2 --size 32x32 --batch-size 2 --workers 1 --steps 300 "
                           "--val-every 10 --seed 2 --run-dir ";
  ::setenv("OMP_NUM_THREADS", "1", 1);
  const fs::path straight = work("kill9_straight") / "run", dir = work("kill9"), run = dir / "run";
  ASSERT_EQ(test::run_unet(args + q(straight)).status, 0);
  const fs::path log = run / "metrics.jsonl";
  std::mt19937 rng(2026);
  std::uniform_int_distribution<int> more_lines(1, 16), delay_ms(0, 30);
  int kills = 0;
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int target = test::lines_in(log.string()) + more_lines(rng);
    const pid_t pid = test::spawn_unet(args + run.string(), (dir / "kill9.log").string());
    ASSERT_GT(pid, 0);
    int status = 0;
    bool ended = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!(ended = ::waitpid(pid, &status, WNOHANG) == pid) && test::lines_in(log.string()) < target) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no progress";
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!ended) {
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
    if (WIFEXITED(status)) {
      ASSERT_EQ(WEXITSTATUS(status), 0) << test::slurp((dir / "kill9.log").string());
      break;
    }
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    ++kills;
  }
  std::printf("%d kill -9 at random points, each followed by a restart, then a finished run\n", kills);
  EXPECT_GE(kills, 10) << "too few kills to test anything";
  const Outcome a = outcome(straight), b = outcome(run);
  EXPECT_EQ(b.losses.size(), 300u);
  EXPECT_TRUE(a == b) << "the run killed " << kills << " times differs from the uninterrupted one";
}

// Every write step in turn, with `action`; the sweep ends at the first pass
// number the run never reaches (it then finishes untouched).
int sweep_write_faults(const std::string& action, int expected_status) {
  int points = 0;
  for (int k = 1; k < 400; ++k) {
    const fs::path run = work(action + "_" + std::to_string(k));
    const test::Result r = train(run, "UNET_FAULT=write:" + std::to_string(k) + ":" + action);
    if (r.out.find("UNET_FAULT: ") == std::string::npos) {
      EXPECT_EQ(r.status, 0) << r.out;
      EXPECT_TRUE(outcome(run) == uninterrupted()) << "no fault, yet another result";
      break;
    }
    ++points;
    // A finished run (the fault fell in its last checkpoint's removal of the
    // old one, or a SIGTERM during the last checkpoint) is fine too: the restart shows it.
    if (r.status != 0) EXPECT_EQ(r.status, expected_status) << "pass " << k << ":\n" << r.out;
    if (action == "fail" && r.status != 0)
      EXPECT_THAT(r.out, testing::AnyOf(HasSubstr("No space left on device"))) << "pass " << k;
    expect_restart_ends_exact(run, action + " at write pass " + std::to_string(k));
    fs::remove_all(run);
  }
  std::printf("%s at each of %d write steps, each followed by a restart\n", action.c_str(), points);
  return points;
}

TEST(Faults, AFailingWriteAtEveryStepOfWritingLosesNothing) {
  EXPECT_GE(sweep_write_faults("fail", 1), 40) << "the run writes fewer steps than its checkpoints need";
}

TEST(Faults, KillNineAtEveryStepOfWritingLosesNothing) {
  EXPECT_GE(sweep_write_faults("kill", 137), 40);
}

TEST(Faults, SigtermAtEveryStepOfWritingResumes) {
  EXPECT_GE(sweep_write_faults("term", 75), 40);
}

TEST(Faults, SigtermDuringValidationResumes) {
  for (int n : {1, 2}) {
    const fs::path run = work("term_validation_" + std::to_string(n));
    const test::Result r = train(run, "UNET_FAULT=validation:" + std::to_string(n) + ":term");
    ASSERT_EQ(r.status, 75) << r.out;
    EXPECT_THAT(r.out, HasSubstr("stopped by a signal at step " + std::to_string(4 * n)));
    expect_restart_ends_exact(run, "SIGTERM during validation " + std::to_string(n));
  }
}

// As root: a small or read-only filesystem of its own (tmpfs) as the run folder.
class Mounted : public ::testing::Test {
 protected:
  bool mount_tmpfs(const fs::path& at, const std::string& options) {
    fs::create_directories(at);
    if (::mount("tmpfs", at.c_str(), "tmpfs", 0, options.c_str()) != 0) return false;
    mounted_ = at;
    return true;
  }
  void TearDown() override {
    if (!mounted_.empty()) ::umount(mounted_.c_str());
  }
  fs::path mounted_;
};

TEST_F(Mounted, AReadOnlyRunFolderIsRefusedBeforeTraining) {
  const fs::path dir = work("read_only") / "mnt";
  if (!mount_tmpfs(dir, "size=1m")) GTEST_SKIP() << "cannot mount a tmpfs here (not root): not tested";
  ASSERT_EQ(::mount("tmpfs", dir.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, "size=1m"), 0);
  const test::Result r = train(dir / "run");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("not writable"));
  EXPECT_THAT(r.out, HasSubstr("another --run-dir"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("step 1/")));
}

TEST_F(Mounted, AFullDiskIsRefusedBeforeTraining) {
  const fs::path dir = work("full") / "mnt";
  if (!mount_tmpfs(dir, "size=160k")) GTEST_SKIP() << "cannot mount a tmpfs here (not root): not tested";
  const test::Result r = train(dir / "run");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("MiB free, and two checkpoints of"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("step 1/")));
}

TEST(Faults, ARankKilledEndsTheOtherAtOnceNamingIt) {
  const fs::path dir = work("rank_killed");
  const std::string args = std::string(kRun) + "--run-dir " + q(dir / "run");
  const std::string job = "export UNET_JOB_ID=rank_killed WORLD_SIZE=2 OMP_NUM_THREADS=1; ";
  const std::string one = "RANK=1 UNET_FAULT=step:3:kill '" + test::unet_binary() + "' " + args + " > " +
                          q(dir / "rank1.log") + " 2>&1 &";
  const auto start = std::chrono::steady_clock::now();
  const test::Result r = test::run_shell(job + one + " RANK=0 timeout 120 '" + test::unet_binary() + "' " + args +
                                         " 2>&1; s=$?; wait; exit $s");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("rank 0 ended %.1f s after the start, its peer killed at step 3\n", seconds);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("rank 0 of 2"));
  EXPECT_THAT(r.out, HasSubstr("rank 1 is gone"));
  EXPECT_LT(seconds, 60);
  EXPECT_THAT(test::slurp((dir / "rank1.log").string()), HasSubstr("kill at pass 3"));
}

}  // namespace
}  // namespace unet
