// The user's paths through the binary: train -> predict -> evaluate ->
// visualize, resume after SIGTERM, and each bad input the trainer must explain
// (with its exit status) without losing the checkpoint it already has.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/storage/checkpoint.h"
#include "io/image_file.h"
#include "io/png.h"
#include "io/tiff.h"
#include "io/data/synthetic.h"
#include "kernels/conv_dnnl.h"
#include "tests/files.h"
#include "tests/run_binary.h"

namespace unet {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using test::run_unet;

fs::path work(const std::string& name) { return test::work_dir("workflow", name); }
using test::q;

// A folder dataset (image/ + label/) of synthetic 64x64 PNGs; label 255 = membrane.
fs::path png_dataset(const fs::path& root, int cases, int64_t size = 64) {
  fs::create_directories(root / "image");
  fs::create_directories(root / "label");
  SyntheticSpec spec;
  spec.size = size;
  spec.cells = 10;
  for (int i = 0; i < cases; ++i) {
    const auto [image, label] = synthetic_em(spec, i);
    write_png((root / "image" / (std::to_string(i) + ".png")).string(), image);
    write_png((root / "label" / (std::to_string(i) + ".png")).string(), label);
  }
  return root;
}

const char* kSmall = "--filters 4 --depth 2 --size 32x32 --batch-size 2 --workers 1";

// TIFF stacks (EM and microscopy): a folder pair of 3-page 48x48 stacks; a 2D
// net trains on their slices, predict writes TIFF masks a page per slice, and
// evaluate scores them against the label stacks.
TEST(Workflow, TiffStacksTrainPredictEvaluate) {
  const fs::path dir = work("tiff"), data = dir / "data";
  fs::create_directories(data / "image");
  fs::create_directories(data / "label");
  for (int i = 0; i < 4; ++i) {
    Volume image, label;
    for (int z = 0; z < 3; ++z) {
      SyntheticSpec spec;
      spec.size = 48, spec.cells = 8;
      const auto [im, lb] = synthetic_em(spec, 10 * i + z);
      if (z == 0) image = im, label = lb, image.voxels.clear(), label.voxels.clear();
      image.voxels.insert(image.voxels.end(), im.voxels.begin(), im.voxels.end());
      label.voxels.insert(label.voxels.end(), lb.voxels.begin(), lb.voxels.end());
    }
    image.d = label.d = 3, image.dims = label.dims = 3;
    write_tiff((data / "image" / (std::to_string(i) + ".tif")).string(), image, "uint8");
    write_tiff((data / "label" / (std::to_string(i) + ".tif")).string(), label, "uint8");
  }
  const test::Result info = run_unet("info " + q(data / "image" / "0.tif"));
  ASSERT_EQ(info.status, 0) << info.out;
  EXPECT_THAT(info.out, HasSubstr("TIFF"));
  EXPECT_THAT(info.out, HasSubstr("48 x 48 x 3"));
  const test::Result t = run_unet("train --data " + q(data) + " --label-threshold 127.5 " + kSmall +
                                  " --val-cases 1 --steps 6 --val-every 6 --run-dir " + q(dir / "run"));
  ASSERT_EQ(t.status, 0) << t.out;
  const test::Result p = run_unet("predict -w " + q(dir / "run" / "best.safetensors") + " " + q(data / "image") +
                                  " -o " + q(dir / "pred") + " --probabilities");
  ASSERT_EQ(p.status, 0) << p.out;
  EXPECT_THAT(p.out, HasSubstr("3_mask.tif"));
  const Volume mask = read_image((dir / "pred" / "3_mask.tif").string());
  EXPECT_EQ(mask.w, 48);
  EXPECT_EQ(mask.d, 3) << "a page per slice";
  EXPECT_EQ(read_image((dir / "pred" / "3_prob.tif").string()).datatype, "float32");
  EXPECT_TRUE(fs::exists(dir / "pred" / "3_components.tif"));
  const test::Result e = run_unet("evaluate -p " + q(dir / "pred") + " -l " + q(data / "label") +
                                  " --label-threshold 127.5");
  ASSERT_EQ(e.status, 0) << e.out;
  EXPECT_THAT(e.out, HasSubstr("class 1 over 4 case(s): Dice"));
}

TEST(Workflow, TrainPredictEvaluateVisualize) {
  const fs::path dir = work("full");
  const fs::path data = png_dataset(dir / "data", 6);
  const test::Result t = run_unet("train --data " + q(data) + " --label-threshold 127.5 " + kSmall +
                                  " --val-cases 5 --steps 12 --val-every 6 --run-dir " + q(dir / "run"));
  ASSERT_EQ(t.status, 0) << t.out;
  EXPECT_THAT(t.out, HasSubstr("held-out 1 case(s)"));
  for (const char* f : {"best.safetensors", "checkpoints/step-000012/weights.safetensors",
                        "checkpoints/latest/state.safetensors", "metrics.jsonl", "run.json", "config.ini", "learning_curve.png", "overlays/5.png"})
    EXPECT_TRUE(fs::exists(dir / "run" / f)) << f;
  // The saved configuration replays the run: same model, same data split.
  const test::Result again = run_unet("train --config " + q(dir / "run" / "config.ini") + " --steps 1 --run-dir " +
                                      q(dir / "again"));
  ASSERT_EQ(again.status, 0) << again.out;
  auto model_and_split = [](const fs::path& run) {
    const nlohmann::json j = nlohmann::json::parse(std::ifstream(run / "run.json"));
    return j["model"].dump() + j["train_cases"].dump() + j["val_cases"].dump();
  };
  EXPECT_EQ(model_and_split(dir / "run"), model_and_split(dir / "again"));

  const test::Result p = run_unet("predict -w " + q(dir / "run" / "best.safetensors") + " " + q(data / "image") +
                                  " -o " + q(dir / "pred") + " --probabilities");
  ASSERT_EQ(p.status, 0) << p.out;
  for (const char* f : {"0_mask.png", "0_prob.png", "0_components.png", "5_mask.png"})
    EXPECT_TRUE(fs::exists(dir / "pred" / f)) << f;
  const Volume mask = read_png((dir / "pred" / "5_mask.png").string());
  EXPECT_EQ(mask.w, 64);
  // --keep-largest: one object per image (membranes form one network plus
  // fragments; every image has foreground), never more voxels than without it.
  const test::Result k = run_unet("predict -w " + q(dir / "run" / "best.safetensors") + " " + q(data / "image") +
                                  " -o " + q(dir / "largest") + " --keep-largest");
  ASSERT_EQ(k.status, 0) << k.out;
  EXPECT_THAT(k.out, HasSubstr("5_mask.png (1 object(s))"));
  EXPECT_THAT(k.out, ::testing::Not(::testing::ContainsRegex("\\(([02-9]|[1-9][0-9]+) object")));
  const Volume largest = read_png((dir / "largest" / "5_mask.png").string());
  double before = 0, after = 0;
  for (size_t i = 0; i < mask.voxels.size(); ++i) before += mask.voxels[i] > 0, after += largest.voxels[i] > 0;
  EXPECT_GT(after, 0);
  EXPECT_LE(after, before);

  const test::Result e = run_unet("evaluate -p " + q(dir / "pred") + " -l " + q(data / "label") + " --label-threshold 127.5 --csv " +
                                  q(dir / "eval.csv"));
  ASSERT_EQ(e.status, 0) << e.out;
  EXPECT_THAT(e.out, HasSubstr("class 1 over 6 case(s): Dice"));
  std::ifstream csv(dir / "eval.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header, "case,class,dice,iou,precision,recall,hausdorff,hd95");

  const test::Result v = run_unet("visualize " + q(data / "image" / "5.png") + " -l " + q(data / "label" / "5.png") +
                                  " -p " + q(dir / "pred" / "5_mask.png") + " -o " + q(dir / "vis.png"));
  ASSERT_EQ(v.status, 0) << v.out;
  EXPECT_EQ(read_png((dir / "vis.png").string()).c, 3);
}

std::vector<float> tensor(const fs::path& file, const std::string& name) {
  const Safetensors f = read_safetensors(file.string());
  return f.find(name) ? f.find(name)->values : std::vector<float>{};
}

// Fine-tuning: another run's weights, the encoder frozen.
// The CPU's bf16 convolutions (AVX-512 BF16, AMX) train the default task (the
// README's first command) to the Dice fp32 reaches, within 0.01.
TEST(Workflow, Bf16OnTheCpuTrainsTheDefaultTaskToFp32sDice) {
  if (!cpu_has_bf16_convolutions()) GTEST_SKIP() << "this CPU has no bf16 convolutions in oneDNN (AVX-512 needed)";
  auto dice = [](const std::string& precision) {
    const fs::path dir = work("default-" + precision);
    const test::Result r = run_unet("train --precision " + precision + " --run-dir " + q(dir / "run"));
    EXPECT_EQ(r.status, 0) << r.out;
    const size_t at = r.out.find("class 1 Dice ");
    EXPECT_NE(at, std::string::npos) << r.out;
    return at == std::string::npos ? -1.0 : std::stod(r.out.substr(at + 13));
  };
  const double fp32 = dice("fp32"), bf16 = dice("bf16");
  EXPECT_GT(fp32, 0.9);
  EXPECT_NEAR(bf16, fp32, 0.01);
}

TEST(Workflow, LoadWeightsAndFreezeTheEncoder) {
  const fs::path dir = work("finetune");
  const std::string args = "train " + std::string(kSmall) + " --steps 3 --run-dir ";
  ASSERT_EQ(run_unet(args + q(dir / "base")).status, 0);
  const fs::path base = dir / "base" / "checkpoints" / "latest" / "weights.safetensors",
                 tuned = dir / "tuned" / "checkpoints" / "latest" / "weights.safetensors";
  const test::Result r = run_unet(args + q(dir / "tuned") + " --load-weights " + q(base) + " --freeze enc0,enc1 --seed 9");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(tensor(base, "enc1.conv1.weight"), tensor(tuned, "enc1.conv1.weight"));
  EXPECT_NE(tensor(base, "dec0.conv0.weight"), tensor(tuned, "dec0.conv0.weight"));
  // --resume needs something to resume; --load-weights into a run that has a checkpoint is refused.
  EXPECT_EQ(run_unet(args + q(dir / "empty") + " --resume").status, 1);
  const test::Result twice = run_unet(args + q(dir / "tuned") + " --load-weights " + q(base));
  EXPECT_EQ(twice.status, 1);
  EXPECT_THAT(twice.out, HasSubstr("already holds a checkpoint"));
}

// SIGTERM mid-run: exit 75 with a checkpoint; the same command again finishes
// with the weights of a run that was never stopped, bit for bit.
TEST(Workflow, SigtermThenResumeEqualsUninterrupted) {
  const fs::path dir = work("resume");
  const std::string args = "train --filters 8 --depth 3 --size 64x64 --batch-size 4 --workers 1 --steps 40 "
                           "--val-every 20 --seed 3 --run-dir ";
  ASSERT_EQ(run_unet(args + q(dir / "straight")).status, 0);

  const pid_t pid = test::spawn_unet(args + (dir / "stopped").string(), (dir / "first.log").string());
  ASSERT_GT(pid, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (test::lines_in((dir / "stopped" / "metrics.jsonl").string()) < 3) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no progress";
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::ifstream first(dir / "first.log");
  const std::string log((std::istreambuf_iterator<char>(first)), {});
  ASSERT_TRUE(WIFEXITED(status)) << log;
  ASSERT_EQ(WEXITSTATUS(status), 75) << log;
  EXPECT_THAT(log, HasSubstr("checkpoint written"));
  EXPECT_LT(test::lines_in((dir / "stopped" / "metrics.jsonl").string()), 40)
      << "the stop came too late to test anything";

  const test::Result resumed = run_unet(args + q(dir / "stopped"));
  ASSERT_EQ(resumed.status, 0) << resumed.out;
  EXPECT_THAT(resumed.out, HasSubstr("resuming"));
  EXPECT_EQ(test::all_weights((dir / "straight" / "checkpoints" / "latest" / "weights.safetensors").string()),
            test::all_weights((dir / "stopped" / "checkpoints" / "latest" / "weights.safetensors").string()));
}

TEST(Workflow, MissingDataFolder) {
  const test::Result r = run_unet("train --data /no/such/folder " + std::string(kSmall) + " --run-dir " +
                                  q(work("missing") / "run"));
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.out, HasSubstr("/no/such/folder"));
}

TEST(Workflow, ImageAndLabelOfDifferentShapes) {
  const fs::path dir = work("mismatch");
  const fs::path data = png_dataset(dir / "data", 3);
  const auto [image, label] = synthetic_em(SyntheticSpec{2, 48, 10}, 7);
  write_png((data / "label" / "1.png").string(), label);  // 48x48 label for a 64x64 image
  const test::Result r = run_unet("train --data " + q(data) + " --label-threshold 127.5 " + kSmall + " --run-dir " +
                                  q(dir / "run"));
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.out, HasSubstr("1.png"));
  EXPECT_THAT(r.out, HasSubstr("different shapes"));
}

TEST(Workflow, SizeThatCannotPassNamesSizesThatCan) {
  const test::Result r = run_unet("train --filters 4 --depth 3 --size 100x100 --steps 1 --run-dir " +
                                  q(work("size") / "run"));
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.out, HasSubstr("96 or 104"));
}

TEST(Workflow, CorruptAndForeignCheckpoints) {
  const fs::path dir = work("ckpt");
  ASSERT_EQ(run_unet("train " + std::string(kSmall) + " --steps 2 --run-dir " + q(dir / "run")).status, 0);
  // Another architecture in the same run folder.
  test::Result r = run_unet("train --filters 8 --depth 2 --size 32x32 --batch-size 2 --steps 4 --run-dir " +
                            q(dir / "run"));
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.out, HasSubstr("checkpoint of another model"));
  // A damaged checkpoint, the only one: named, and refused with the choices.
  const fs::path checkpoint = dir / "run" / "checkpoints" / "step-000002";
  fs::resize_file(checkpoint / "weights.safetensors", 1000);
  r = run_unet("train " + std::string(kSmall) + " --steps 4 --run-dir " + q(dir / "run"));
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.out, HasSubstr("step-000002/weights.safetensors"));
  EXPECT_THAT(r.out, HasSubstr("no complete checkpoint"));
  EXPECT_THAT(r.out, HasSubstr("--load-weights"));
  // Weights of another model given to predict.
  r = run_unet("predict -w " + q(checkpoint / "state.safetensors") + " x.png");
  EXPECT_EQ(r.status, 1);
  EXPECT_THAT(r.out, HasSubstr("is missing"));
}

std::string bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// A disk that cannot take the checkpoint (a file-size limit below its size): a
// clear error naming the file, and the checkpoints already there survive byte
// for byte, with no temporary left behind.
TEST(Workflow, FullDiskKeepsThePreviousCheckpoint) {
  const fs::path dir = work("full_disk");
  const std::string args = "train --filters 16 --depth 2 --size 32x32 --batch-size 2 --workers 1 --run-dir " +
                           q(dir / "run");
  ASSERT_EQ(run_unet(args + " --steps 2").status, 0);
  const fs::path checkpoint = dir / "run" / "checkpoints" / "step-000002" / "weights.safetensors";
  const std::string best = bytes(dir / "run" / "best.safetensors"), last = bytes(checkpoint);
  ASSERT_GT(last.size(), 256u * 1024) << "the limit must be below the checkpoint's size";
  const test::Result r = run_unet(args + " --steps 4", "trap '' XFSZ; ulimit -f 200");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr(".safetensors"));
  EXPECT_EQ(bytes(dir / "run" / "best.safetensors"), best);
  EXPECT_EQ(bytes(checkpoint), last);
  for (const auto& e : fs::recursive_directory_iterator(dir / "run"))
    EXPECT_THAT(e.path().filename().string(), ::testing::AllOf(::testing::Not(HasSubstr(".tmp")), ::testing::Not(HasSubstr("incomplete"))));
}

}  // namespace
}  // namespace unet
