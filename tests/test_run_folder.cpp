// The run folder's checkpoints, each one unit, and its start decision:
//   - a checkpoint round trip (weights, moments, every state field), one step
//     folder left after the next, `latest` pointing at it, nothing half-made;
//   - weights of one checkpoint beside the state of another are refused by the
//     digest, and the newest complete checkpoint resumed instead;
//   - truncated or missing files: passed over, named; none complete: refused
//     with the choices;
//   - refused starts: --resume without a checkpoint, weights without one
//     (a finished run's best, an earlier unet's last.*), --load-weights over one;
//     a run folder that cannot be written; too little free space;
//   - the log trimmed to the resumed step, and best.safetensors restored when
//     a crash came between the checkpoint and it.
#include "engine/train/run_folder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "engine/storage/checkpoint.h"
#include "tests/files.h"

namespace unet {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path fresh(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("unet_run_folder_" + name);
  fs::remove_all(d);
  return d;
}

UNetConfig tiny() {
  UNetConfig c;
  c.depth = 2;
  c.start_filters = 2;
  return c;
}

TrainState state_at(const UNet& model, int64_t step) {
  TrainState s;
  s.step = step;
  s.best = 0.5 + 0.01 * double(step);
  s.best_step = step - 1;
  s.bad_validations = 2;
  s.loss_scale = 1024;
  s.good_steps = 7;
  s.ranks = 2;
  s.m.assign(model.parameter_count(), float(step));
  s.v.assign(model.parameter_count(), 0.25f * float(step));
  return s;
}

// A model whose weights say which step they are of.
void set_weights(UNet& model, int64_t step) {
  for (int64_t i = 0; i < model.parameter_count(); ++i) model.params()[i] = float(step) + 1e-3f * float(i % 100);
}

// A state of the model's size, all zero: what load_checkpoint fills.
TrainState blank(const UNet& model) {
  TrainState s;
  s.m.assign(model.parameter_count(), 0.f);
  s.v.assign(model.parameter_count(), 0.f);
  return s;
}

// A started run folder of its own per test, and a tiny model.
class RunFolderTest : public ::testing::Test {
 protected:
  void SetUp() override { folder.start(false, "", false); }
  void TearDown() override { fs::remove_all(dir); }
  const fs::path dir = fresh(::testing::UnitTest::GetInstance()->current_test_info()->name());
  const RunFolder folder{dir.string()};
  UNet model{tiny()};
};

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(RunFolderTest, CheckpointRoundTripKeepsOneUnit) {
  set_weights(model, 3);
  folder.save_checkpoint(model, state_at(model, 3), {{"unet.command", "test"}});
  set_weights(model, 8);
  folder.save_checkpoint(model, state_at(model, 8), {});
  EXPECT_EQ(names_in(dir / "checkpoints"), (std::vector<std::string>{"latest", "step-000008"}));
  EXPECT_EQ(fs::read_symlink(dir / "checkpoints" / "latest"), "step-000008");
  EXPECT_EQ(names_in(dir / "checkpoints" / "step-000008"),
            (std::vector<std::string>{"state.safetensors", "weights.safetensors"}));

  UNet back(tiny());
  TrainState s = blank(back);
  EXPECT_EQ(folder.load_checkpoint(back, s), (dir / "checkpoints" / "step-000008").string());
  const TrainState want = state_at(model, 8);
  EXPECT_EQ(s.step, 8);
  EXPECT_EQ(s.best, want.best);
  EXPECT_EQ(s.best_step, 7);
  EXPECT_EQ(s.bad_validations, 2);
  EXPECT_EQ(s.loss_scale, 1024.f);
  EXPECT_EQ(s.good_steps, 7);
  EXPECT_EQ(s.ranks, 2);
  EXPECT_EQ(s.m, want.m);
  EXPECT_EQ(s.v, want.v);
  EXPECT_TRUE(std::equal(model.params(), model.params() + model.parameter_count(), back.params()));
}

// Two checkpoints on disk (a crash after the newer one's rename, before the
// older one's removal), the newer one's weights then replaced by the older's.
TEST_F(RunFolderTest, WeightsOfAnotherCheckpointAreRefusedAndTheNewestCompleteOneResumed) {
  set_weights(model, 4);
  folder.save_checkpoint(model, state_at(model, 4), {});
  fs::copy(dir / "checkpoints" / "step-000004", dir / "kept");
  set_weights(model, 6);
  folder.save_checkpoint(model, state_at(model, 6), {});
  fs::rename(dir / "kept", dir / "checkpoints" / "step-000004");
  // Same step stamp, other weights: only the digest tells.
  Safetensors w = read_safetensors((dir / "checkpoints" / "step-000004" / "weights.safetensors").string());
  w.metadata["unet.step"] = "6";
  write_safetensors((dir / "checkpoints" / "step-000006" / "weights.safetensors").string(), w);

  UNet back(tiny());
  TrainState s = blank(back);
  testing::internal::CaptureStderr();
  EXPECT_EQ(folder.load_checkpoint(back, s), (dir / "checkpoints" / "step-000004").string());
  const std::string said = testing::internal::GetCapturedStderr();
  EXPECT_THAT(said, HasSubstr("step-000006 is damaged, passed over"));
  EXPECT_THAT(said, HasSubstr("digest differs"));
  EXPECT_EQ(s.step, 4);
  EXPECT_EQ(back.params()[0], 4.f);
  EXPECT_EQ(s.m, state_at(model, 4).m);
}

TEST_F(RunFolderTest, DamagedCheckpointsAreNamedAndNoneCompleteIsRefused) {
  folder.save_checkpoint(model, state_at(model, 5), {});
  const fs::path state = dir / "checkpoints" / "step-000005" / "state.safetensors";
  fs::resize_file(state, fs::file_size(state) / 2);
  TrainState s = blank(model);
  testing::internal::CaptureStderr();
  try {
    folder.load_checkpoint(model, s);
    FAIL() << "a truncated state was accepted";
  } catch (const FileError& e) {
    EXPECT_THAT(e.what(), HasSubstr("no complete checkpoint to resume from"));
    EXPECT_THAT(e.what(), HasSubstr("state.safetensors"));
    EXPECT_THAT(e.what(), HasSubstr("--load-weights"));
  }
  testing::internal::GetCapturedStderr();
  // The state of another step under this step's name.
  folder.save_checkpoint(model, state_at(model, 5), {});
  Safetensors st = read_safetensors(state.string());
  st.metadata["step"] = "9";
  write_safetensors(state.string(), st);
  testing::internal::CaptureStderr();
  EXPECT_THAT([&] { folder.load_checkpoint(model, s); },
              ::testing::ThrowsMessage<FileError>(HasSubstr("the state is of step 9, the weights of step 5")));
  testing::internal::GetCapturedStderr();
}

TEST_F(RunFolderTest, ACheckpointOfAnotherModelIsRefused) {
  folder.save_checkpoint(model, state_at(model, 2), {});
  UNetConfig wider = tiny();
  wider.start_filters = 4;
  UNet other(wider);
  TrainState s = blank(other);
  EXPECT_THAT([&] { folder.load_checkpoint(other, s); },
              ::testing::ThrowsMessage<std::invalid_argument>(HasSubstr("a checkpoint of another model")));
}

TEST_F(RunFolderTest, TheStartDecision) {
  EXPECT_THAT([&] { folder.start(true, "", false); },
              ::testing::ThrowsMessage<std::invalid_argument>(HasSubstr("holds no checkpoint")));
  folder.start(false, "", true);
  EXPECT_TRUE(fs::is_directory(dir / "checkpoints"));
  EXPECT_TRUE(folder.checkpoints().empty());
  EXPECT_EQ(names_in(dir), (std::vector<std::string>{"checkpoints"})) << "the writability probe is gone";
  // Weights it cannot resume from: refused, with the choices.
  for (const char* f : {"best.safetensors", "last.safetensors", "last.state.safetensors"}) {
    std::ofstream(dir / f) << "x";
    EXPECT_THAT([&] { folder.start(false, "", false); },
                ::testing::ThrowsMessage<std::invalid_argument>(
                    testing::AllOf(HasSubstr(std::string("holds ") + f + " but no checkpoint"),
                                   HasSubstr("--resume CHECKPOINT"), HasSubstr("--load-weights"),
                                   HasSubstr("another --run-dir"))));
    fs::remove(dir / f);
  }
  folder.save_checkpoint(model, state_at(model, 1), {});
  std::ofstream(dir / "best.safetensors") << "x";
  folder.start(true, "", false);  // a checkpoint: resumed
  EXPECT_THAT([&] { folder.start(false, "", true); },
              ::testing::ThrowsMessage<std::invalid_argument>(HasSubstr("already holds a checkpoint")));
}

TEST_F(RunFolderTest, ANamedCheckpointUnlessTheRunWentOnFromIt) {
  const fs::path source = fresh("named_source");
  const RunFolder from(source.string());
  from.start(false, "", false);
  set_weights(model, 10);
  from.save_checkpoint(model, state_at(model, 10), {});
  const std::string named = (source / "checkpoints" / "step-000010").string();
  folder.start(true, named, false);  // an empty run folder, a named checkpoint: resumed
  TrainState s = blank(model);
  EXPECT_EQ(folder.load_checkpoint(model, s, named), named);
  set_weights(model, 12);
  folder.save_checkpoint(model, state_at(model, 12), {});
  // Requeued with the same command: its own newer checkpoint.
  EXPECT_EQ(folder.load_checkpoint(model, s, named), (dir / "checkpoints" / "step-000012").string());
  EXPECT_EQ(s.step, 12);
  fs::remove_all(source);
}

TEST_F(RunFolderTest, TooLittleFreeSpaceIsSaidInMiB) {
  folder.check_space(1 << 20);
  EXPECT_THAT([&] { folder.check_space(int64_t(1) << 60); },
              ::testing::ThrowsMessage<std::runtime_error>(
                  testing::AllOf(HasSubstr("MiB free"), HasSubstr("two checkpoints of"), HasSubstr(dir.string()))));
}

TEST_F(RunFolderTest, TheLogIsTrimmedToTheResumedStep) {
  for (int step = 1; step <= 5; ++step) folder.append_metrics({{"step", step}, {"loss", 0.5}});
  std::ofstream(dir / "metrics.jsonl", std::ios::app) << "{\"step\": 6, \"lo";  // cut short by a crash
  folder.trim_metrics(3);
  EXPECT_EQ(test::lines_in((dir / "metrics.jsonl").string()), 3);
  EXPECT_THAT(test::slurp((dir / "metrics.jsonl").string()), HasSubstr("{\"loss\":0.5,\"step\":3}\n"));
}

TEST_F(RunFolderTest, BestWeightsOlderThanTheStateSaysAreWrittenAgain) {
  set_weights(model, 2);
  folder.save_best(model, 2, {});
  set_weights(model, 4);
  TrainState s = state_at(model, 4);
  s.best_step = 3;  // the best is not this checkpoint's weights: nothing to do
  folder.restore_best(model, s, {});
  EXPECT_EQ(read_safetensors((dir / "best.safetensors").string()).metadata.at("unet.step"), "2");
  s.best_step = 4;  // the crash came after the checkpoint of step 4, before best.safetensors
  folder.restore_best(model, s, {});
  const Safetensors best = read_safetensors((dir / "best.safetensors").string());
  EXPECT_EQ(best.metadata.at("unet.step"), "4");
  EXPECT_EQ(best.tensors[0].values[0], 4.f);
}

}  // namespace
}  // namespace unet
