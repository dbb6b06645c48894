// Data parallelism on CPUs.
//   - Who is who: Slurm's variables before RANK/WORLD_SIZE, and bad values named.
//   - Gloo between two ranks (two threads, TCP on 127.0.0.1): all-reduce of
//     floats and doubles, broadcast, barrier, and the bucketed gradient
//     all-reduce started part-way through "backward".
//   - Through the binary: 2 processes with the global batch 2B end with the
//     weights of 1 process with batch 2B (2D and 3D; Dice + CE, whose batch sums
//     are reduced over ranks; dropout, whose masks follow the global sample;
//     synchronized batch norm, running statistics included), within the
//     tolerance below; summation order is the only difference.
//   - Resuming on another number of ranks (2 then 1, 1 then 2).
//   - --ranks 2 (this machine's launcher): the weights of one process with the
//     global batch; a rank killed ends the command at once, naming the rank and
//     the signal; SIGTERM to the command, then the same command again, ends bit
//     for bit at the uninterrupted --ranks 2 run.
//   - A global batch that does not divide over the ranks, and a launch outside
//     Slurm without UNET_JOB_ID, are refused with what to do.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "engine/parallel/communicator.h"
#include "engine/parallel/gradient_reducer.h"
#include "tests/files.h"
#include "tests/run_binary.h"

namespace unet {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path work(const std::string& name) { return test::work_dir("parallel", name); }
using test::q;

class Environment : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const char* v : {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_JOB_ID", "SLURM_STEP_ID",
                          "SLURM_RESTART_COUNT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "UNET_JOB_ID"})
      ::unsetenv(v);
  }
};

TEST_F(Environment, SingleProcessByDefault) {
  const RankInfo r = rank_info_from_environment();
  EXPECT_EQ(r.rank, 0);
  EXPECT_EQ(r.world, 1);
}

TEST_F(Environment, SlurmBeforeTorchrunStyle) {
  ::setenv("RANK", "0", 1), ::setenv("WORLD_SIZE", "8", 1);
  ::setenv("SLURM_PROCID", "3", 1), ::setenv("SLURM_NTASKS", "4", 1), ::setenv("SLURM_LOCALID", "1", 1);
  ::setenv("SLURM_JOB_ID", "77", 1), ::setenv("SLURM_STEP_ID", "0", 1), ::setenv("SLURM_RESTART_COUNT", "2", 1);
  const RankInfo r = rank_info_from_environment();
  EXPECT_EQ(r.rank, 3);
  EXPECT_EQ(r.world, 4);
  EXPECT_EQ(r.local_rank, 1);
  EXPECT_EQ(r.job, "slurm-77-0-2");  // a requeued job meets in a new folder
}

TEST_F(Environment, TorchrunStyle) {
  ::setenv("RANK", "1", 1), ::setenv("WORLD_SIZE", "2", 1), ::setenv("LOCAL_RANK", "1", 1);
  ::setenv("UNET_JOB_ID", "try1", 1);
  const RankInfo r = rank_info_from_environment();
  EXPECT_EQ(r.rank, 1);
  EXPECT_EQ(r.world, 2);
  EXPECT_EQ(r.job, "try1");
}

TEST_F(Environment, BadValuesAreNamed) {
  ::setenv("RANK", "two", 1), ::setenv("WORLD_SIZE", "2", 1);
  try {
    rank_info_from_environment();
    FAIL() << "accepted RANK=two";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("RANK=\"two\""));
  }
  ::setenv("RANK", "2", 1);
  try {
    rank_info_from_environment();
    FAIL() << "accepted RANK=2 of WORLD_SIZE=2";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("outside WORLD_SIZE=2"));
  }
}

// Runs f(communicator) on two ranks joined through Gloo; returns rank 0's and 1's results.
template <class F>
auto on_two_ranks(const std::string& name, F f) {
  const fs::path store = work(name);
  auto rank = [&](int r) {
    auto comm = make_gloo_communicator({r, 2, 0, name}, store.string(), "127.0.0.1");
    return f(*comm);
  };
  auto one = std::async(std::launch::async, rank, 1);
  auto zero = rank(0);
  return std::make_pair(zero, one.get());
}

TEST(Gloo, AllReduceBroadcastBarrier) {
  const auto [r0, r1] = on_two_ranks("collectives", [](Communicator& c) {
    std::vector<float> f{1.f + c.rank(), 10.f * c.rank(), -2.f};
    c.all_reduce_sum(f.data(), 3);
    std::vector<double> d{0.1 * (c.rank() + 1)};
    c.all_reduce_sum(d.data(), 1);
    std::vector<float> b{float(c.rank() + 5), float(c.rank() + 6)};
    c.broadcast(b.data(), 2, 1);
    c.barrier();
    f.push_back(static_cast<float>(d[0]));
    f.insert(f.end(), b.begin(), b.end());
    return f;
  });
  const std::vector<float> want{3.f, 10.f, -4.f, 0.3f, 6.f, 7.f};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_FLOAT_EQ(r0[i], want[i]) << i;
    EXPECT_EQ(r0[i], r1[i]) << "the ranks disagree at " << i;
  }
}

// The reducer over real Gloo: four tensors in buckets of at least 3 values;
// "backward" finishes them from the end, and each rank's gradients become the sum.
TEST(Gloo, BucketedGradientAllReduce) {
  const std::vector<int64_t> offsets{0, 2, 5, 6};  // tensors of 2, 3, 1 and 4 values
  const auto [r0, r1] = on_two_ranks("buckets", [&](Communicator& c) {
    std::vector<float> g(10);
    for (int i = 0; i < 10; ++i) g[i] = float(i + 100 * c.rank());
    GradientReducer reducer(c, g.data(), 10, offsets, 3);
    EXPECT_EQ(reducer.buckets(), (std::vector<std::pair<int64_t, int64_t>>{{6, 10}, {2, 6}, {0, 2}}));
    reducer.begin();
    for (int64_t first : {6, 5, 2, 0}) reducer.ready(first);
    reducer.finish();
    return g;
  });
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(r0[i], float(2 * i + 100)) << i;
    EXPECT_EQ(r1[i], r0[i]) << i;
  }
}

std::vector<float> weights(const fs::path& run) { return test::all_weights((run / "checkpoints" / "latest" / "weights.safetensors").string()); }

// Both ranks as background processes of one shell; the shell's status is rank 0's
// (rank 1's failure shows in its log, which the caller prints on failure).
// `env`: more variables for both.
test::Result two_ranks(const std::string& args, const fs::path& dir, const std::string& env = "") {
  const std::string job = "export UNET_JOB_ID=" + dir.filename().string() + " WORLD_SIZE=2 OMP_NUM_THREADS=1 " + env + "; ";
  const std::string one = "RANK=1 '" + std::string(UNET_BINARY) + "' " + args + " > " + q(dir / "rank1.log") + " 2>&1 &";
  return test::run_unet(args + " 2>&1; s=$?; wait; exit $s", job + one + " RANK=0");
}

// Two ranks with the global batch 4 against one process with batch 4: 25 Adam
// steps of Dice + CE with dropout. The tolerance: the per-sample gradients sum
// in another order (float32 ulp differences), which Adam's normalization can
// carry into a weight at about 1e-5 relative per step.
void expect_close(const std::vector<float>& a, const std::vector<float>& b, const std::string& name) {
  ASSERT_EQ(a.size(), b.size());
  double worst = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(a[i])));
  }
  std::printf("%s: %zu weights, max abs difference %.3g (largest weight %.3g)\n", name.c_str(), a.size(), worst, scale);
  EXPECT_LT(worst, 1e-4 * scale);
  EXPECT_GT(worst + 1, 0);  // the comparison ran over every weight
}

void expect_same_weights(const std::string& model, const std::string& name) {
  const fs::path dir = work(name);
  const std::string args = "train " + model + " --batch-size 4 --workers 1 --steps 25 --val-every 25 --dropout 0.2 "
                           "--seed 5 --run-dir ";
  const test::Result one = test::run_unet(args + q(dir / "one"), "export OMP_NUM_THREADS=2");
  ASSERT_EQ(one.status, 0) << one.out;
  const test::Result two = two_ranks(args + q(dir / "two"), dir);
  ASSERT_EQ(two.status, 0) << two.out << "\nrank 1:\n" << test::slurp((dir / "rank1.log").string());
  EXPECT_THAT(two.out, HasSubstr("data parallel: 2 ranks"));
  EXPECT_FALSE(fs::exists(dir / "two" / ".rendezvous" / name)) << "rank 0 leaves no rendezvous behind";
  expect_close(weights(dir / "one"), weights(dir / "two"), name);
}

TEST(DataParallel, TwoRanksEqualOneProcessWithTheGlobalBatch2D) {
  expect_same_weights("--filters 4 --depth 2 --size 32x32", "equal2d");
}

TEST(DataParallel, TwoRanksEqualOneProcessWithTheGlobalBatch3D) {
  expect_same_weights("--dims 3 --filters 2 --depth 2 --size 16x16x16 --norm instance", "equal3d");
}

TEST(DataParallel, TwoRanksWithSynchronizedBatchNormEqualOneProcess) {
  // Without --sync-batchnorm the ranks' own statistics differ from the global batch's (seen: 0.35).
  expect_same_weights("--filters 4 --depth 2 --size 32x32 --norm batch --sync-batchnorm", "syncbn");
}

// A job requeued onto another number of ranks resumes: the global batch and
// the sample order are the run's, so it ends at the uninterrupted run within
// the tolerance above. Stopped at the first validation (step 10 of 20) by a
// SIGTERM, on 2 ranks then resumed on 1, and on 1 then resumed on 2.
TEST(DataParallel, ResumesOnAnotherNumberOfRanks) {
  const fs::path dir = work("reranked");
  const std::string args = "train --filters 4 --depth 2 --size 32x32 --batch-size 4 --workers 1 --steps 20 "
                           "--val-every 10 --dropout 0.2 --seed 5 --run-dir ";
  const std::string stop = "UNET_FAULT=validation:1:term";
  ASSERT_EQ(test::run_unet(args + q(dir / "straight"), "export OMP_NUM_THREADS=2").status, 0);

  ASSERT_EQ(two_ranks(args + q(dir / "two_then_one"), dir, stop).status, 75);
  test::Result r = test::run_unet(args + q(dir / "two_then_one"), "export OMP_NUM_THREADS=2");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("at step 10 of 20"));
  EXPECT_THAT(r.out, HasSubstr("its run had 2 rank(s), this one 1"));
  expect_close(weights(dir / "straight"), weights(dir / "two_then_one"), "2 ranks, then 1");

  ASSERT_EQ(test::run_unet(args + q(dir / "one_then_two"), "export OMP_NUM_THREADS=2 " + stop).status, 75);
  r = two_ranks(args + q(dir / "one_then_two"), dir);
  ASSERT_EQ(r.status, 0) << r.out << "\nrank 1:\n" << test::slurp((dir / "rank1.log").string());
  EXPECT_THAT(r.out, HasSubstr("its run had 1 rank(s), this one 2"));
  expect_close(weights(dir / "straight"), weights(dir / "one_then_two"), "1 rank, then 2");
}

// --ranks N: this machine's own launcher, as srun -n N.
const std::string kRanksRun = "train --filters 4 --depth 2 --size 32x32 --batch-size 4 --workers 1 --dropout 0.2 "
                              "--seed 5 --val-every 20 --ranks 2 ";

TEST(DataParallel, RanksTwoEqualOneProcessWithTheGlobalBatch) {
  const fs::path dir = work("ranks");
  const std::string args = "train --filters 4 --depth 2 --size 32x32 --batch-size 4 --workers 1 --steps 25 "
                           "--val-every 25 --dropout 0.2 --seed 5 --run-dir ";
  ASSERT_EQ(test::run_unet(args + q(dir / "one"), "export OMP_NUM_THREADS=2").status, 0);
  // As under srun -n 1: the ranks must not read Slurm's world of 1 and launch ranks of their own.
  const test::Result two = test::run_unet(args + q(dir / "two") + " --ranks 2",
                                          "export SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_LOCALID=0 SLURM_JOB_ID=7");
  ASSERT_EQ(two.status, 0) << two.out;
  EXPECT_THAT(two.out, HasSubstr("--ranks 2: "));
  EXPECT_THAT(two.out, HasSubstr("data parallel: 2 ranks"));
  expect_close(weights(dir / "one"), weights(dir / "two"), "--ranks 2");
  // Under srun or RANK/WORLD_SIZE a --ranks that disagrees is refused.
  const test::Result under = test::run_unet(args + q(dir / "under") + " --ranks 3", "export RANK=0 WORLD_SIZE=2");
  EXPECT_EQ(under.status, 1);
  EXPECT_THAT(under.out, HasSubstr("already rank 0 of 2"));
}

// Waits (at most 60 s) until the run's log has `lines` lines.
void wait_for_lines(const fs::path& log, int lines) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (test::lines_in(log.string()) < lines) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no progress in " << log;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// The child of `parent` whose environment says RANK=<rank>; -1 when none.
pid_t rank_pid(pid_t parent, int rank) {
  const std::string nul(1, '\0'), want = nul + "RANK=" + std::to_string(rank) + nul;
  std::ifstream children("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) + "/children");
  for (pid_t child; children >> child;)
    if ((nul + test::slurp("/proc/" + std::to_string(child) + "/environ")).find(want) != std::string::npos) return child;
  return -1;
}

TEST(DataParallel, RanksAKilledRankEndsTheRunNamingIt) {
  const fs::path dir = work("ranks_killed");
  const pid_t pid = test::spawn_unet(kRanksRun + "--steps 2000 --run-dir " + (dir / "run").string(),
                                     (dir / "log").string());
  ASSERT_GT(pid, 0);
  wait_for_lines(dir / "run" / "metrics.jsonl", 5);
  const pid_t one = rank_pid(pid, 1);
  ASSERT_GT(one, 0) << "no rank 1 among the launcher's children";
  ::kill(one, SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  int status = 0;
  ::waitpid(pid, &status, 0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  const std::string log = test::slurp((dir / "log").string());
  std::printf("--ranks 2, rank 1 killed: the command ended %.2f s later\n", seconds);
  ASSERT_TRUE(WIFEXITED(status)) << log;
  EXPECT_EQ(WEXITSTATUS(status), 1) << log;
  EXPECT_THAT(log, HasSubstr("rank 1 of 2 (pid " + std::to_string(one) + ") was killed by signal 9"));
  EXPECT_LT(seconds, 60);
}

// SIGTERM to the command reaches both ranks: one checkpoint, exit 75; the same
// command again ends bit for bit at the uninterrupted --ranks 2 run.
TEST(DataParallel, RanksSigtermThenResumeEqualsUninterrupted) {
  const fs::path dir = work("ranks_term");
  const std::string args = kRanksRun + "--steps 200 --run-dir ";
  ASSERT_EQ(test::run_unet(args + q(dir / "straight")).status, 0);
  const pid_t pid = test::spawn_unet(args + (dir / "stopped").string(), (dir / "log").string());
  ASSERT_GT(pid, 0);
  wait_for_lines(dir / "stopped" / "metrics.jsonl", 5);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  const std::string log = test::slurp((dir / "log").string());
  ASSERT_TRUE(WIFEXITED(status)) << log;
  ASSERT_EQ(WEXITSTATUS(status), 75) << log;
  EXPECT_THAT(log, HasSubstr("checkpoint written"));
  EXPECT_LT(test::lines_in((dir / "stopped" / "metrics.jsonl").string()), 200) << "the stop came too late";
  const test::Result resumed = test::run_unet(args + q(dir / "stopped"));
  ASSERT_EQ(resumed.status, 0) << resumed.out;
  EXPECT_THAT(resumed.out, HasSubstr("resuming"));
  EXPECT_EQ(weights(dir / "straight"), weights(dir / "stopped"));
}

TEST(DataParallel, GlobalBatchMustDivide) {
  const fs::path dir = work("divide");
  const test::Result r = two_ranks("train --filters 4 --depth 2 --size 32x32 --batch-size 3 --steps 1 --run-dir " +
                                       q(dir / "run"),
                                   dir);
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.out, HasSubstr("does not divide over 2 ranks"));
}

TEST(DataParallel, OutsideSlurmNeedsAJobName) {
  const fs::path dir = work("noname");
  const test::Result r = test::run_unet(
      "train --filters 4 --depth 2 --size 32x32 --batch-size 2 --steps 1 --run-dir " + q(dir / "run"),
      "export RANK=0 WORLD_SIZE=2");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.out, HasSubstr("UNET_JOB_ID"));
}

}  // namespace
}  // namespace unet
