// slurm/ under a real Slurm (tools/slurm_local.sh makes this machine a one-node
// cluster; tools/test.sh starts it). Skipped, visibly, where sinfo finds none.
//   - train_cpu.sbatch with two tasks trains a tiny model data-parallel and
//     leaves a checkpoint.
//   - A job signalled mid-run (scancel --signal=USR1 --batch) checkpoints, exits
//     75, requeues itself, resumes, and ends with the weights of a job that was
//     never signalled.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "tests/files.h"
#include "tests/run_binary.h"

namespace unet {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// `scontrol show job` field, e.g. "JobState"; empty once the job is forgotten.
std::string job_field(const std::string& id, const std::string& field) {
  const std::string out = test::run_shell("scontrol show job " + id).out;
  const size_t at = out.find(field + "=");
  if (at == std::string::npos) return "";
  const size_t b = at + field.size() + 1;
  return out.substr(b, out.find_first_of(" \n", b) - b);
}

class Slurm : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("sinfo -h >/dev/null 2>&1") != 0)
      GTEST_SKIP() << "no Slurm cluster here (sinfo fails): run tools/slurm_local.sh start as root";
    dir_ = fs::path(::testing::TempDir()) / ("unet_slurm_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Submits slurm/train_cpu.sbatch with two tasks; returns the job id.
  std::string submit(const std::string& name, const std::string& train_args) {
    const std::string out =
        test::run_shell("cd '" + std::string(UNET_SOURCE_DIR) + "' && sbatch --parsable --ntasks=2 --cpus-per-task=1 " +
              "--job-name=" + name + " --output='" + (dir_ / (name + ".out")).string() + "' --export=ALL,UNET='" +
              UNET_BINARY + "' slurm/train_cpu.sbatch --run-dir '" + (dir_ / name).string() + "' " + train_args)
            .out;
    const std::string id = out.substr(0, out.find_first_of(";\n"));
    EXPECT_FALSE(id.empty() || id.find_first_not_of("0123456789") != std::string::npos) << out;
    return id;
  }

  // Waits until the job has ended for good (not pending, running or requeued).
  std::string wait_done(const std::string& id, int seconds) {
    const auto deadline = Clock::now() + std::chrono::seconds(seconds);
    for (;;) {
      const std::string state = job_field(id, "JobState");
      if (state == "COMPLETED" || state == "FAILED" || state == "CANCELLED" || state == "TIMEOUT" ||
          state == "NODE_FAIL" || state.empty())
        return state;
      if (Clock::now() > deadline) return "still " + state + " after " + std::to_string(seconds) + " s";
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }

  std::string output(const std::string& name) const { return test::slurp((dir_ / (name + ".out")).string()); }
  std::vector<float> weights(const std::string& name) const {
    return test::all_weights((dir_ / name / "checkpoints" / "latest" / "weights.safetensors").string());
  }

  fs::path dir_;
};

const char* kTiny = "--filters 4 --depth 2 --size 32x32 --batch-size 4 --workers 1 --seed 9";

TEST_F(Slurm, TwoTasksTrainDataParallel) {
  const std::string id = submit("two", std::string(kTiny) + " --steps 10");
  ASSERT_EQ(wait_done(id, 300), "COMPLETED") << output("two");
  const std::string log = output("two");
  EXPECT_THAT(log, HasSubstr("data parallel: 2 ranks"));
  EXPECT_THAT(log, HasSubstr("10 steps"));
  EXPECT_EQ(job_field(id, "ExitCode"), "0:0");
  EXPECT_TRUE(fs::exists(dir_ / "two" / "checkpoints" / "latest" / "weights.safetensors"));
  EXPECT_TRUE(fs::exists(dir_ / "two" / "best.safetensors"));
}

TEST_F(Slurm, SignalledJobRequeuesResumesAndMatchesAnUninterruptedJob) {
  // Long enough (about 8 ms a step here) that the signal lands mid-run.
  const std::string args = std::string(kTiny) + " --steps 1500 --val-every 500";
  const std::string straight = submit("straight", args);
  ASSERT_EQ(wait_done(straight, 600), "COMPLETED") << output("straight");

  const std::string id = submit("signalled", args);
  const auto deadline = Clock::now() + std::chrono::seconds(300);
  while (test::lines_in((dir_ / "signalled" / "metrics.jsonl").string()) < 5) {
    ASSERT_LT(Clock::now(), deadline) << "no progress:\n" << output("signalled");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  test::run_shell("scancel --signal=USR1 --batch " + id);
  ASSERT_EQ(wait_done(id, 600), "COMPLETED") << output("signalled");
  const std::string log = output("signalled");
  EXPECT_THAT(log, HasSubstr("requeueing job " + id));
  EXPECT_THAT(log, ::testing::ContainsRegex("stopped by a signal at step [0-9]+;"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr("stopped by a signal at step 1500;"))) << "the signal came too late";
  EXPECT_THAT(log, HasSubstr("resuming"));
  EXPECT_EQ(job_field(id, "Restarts"), "1");
  EXPECT_EQ(weights("straight"), weights("signalled")) << log;
}

}  // namespace
}  // namespace unet
