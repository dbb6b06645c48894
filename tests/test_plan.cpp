// The fingerprint of a dataset nibabel wrote, the planner's choices worked out
// by hand, plan files read back and refused, and `unet plan` / `unet train
// --plan` through the binary.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "engine/model/unet_model.h"
#include "engine/storage/checkpoint.h"
#include "engine/plan/planner.h"
#include "io/data/fingerprint.h"
#include "tests/generated_files.h"
#include "tests/run_binary.h"

namespace unet {
namespace {

class PlanDataset : public test::GeneratedFilesTest<PlanDataset> {
 public:
  static constexpr const char* kTag = "plan";
  static constexpr const char* kGenerator = "write_plan_dataset.py";
  static constexpr const char* kModules = "nibabel, numpy";
  static constexpr const char* kInstall = "tools/setup.sh installs them";

 protected:
  static std::string data() { return dir_ + "/out"; }
  static Fingerprint fingerprint(int workers) {
    LabelSpec labels;
    labels.classes = 3;
    return fingerprint_dataset(open_dataset(data()), labels, workers);
  }
};

TEST_F(PlanDataset, FingerprintMatchesNibabelAndNumpy) {
  const Fingerprint f = fingerprint(3);
  ASSERT_EQ(f.cases.size(), 5u);
  EXPECT_EQ(f.dims, 3);
  EXPECT_EQ(f.channel_names, std::vector<std::string>{"CT"});
  for (const CaseFingerprint& c : f.cases) {
    SCOPED_TRACE(c.id);
    const auto& e = expected_["cases"][c.id];
    EXPECT_EQ(c.size, (e["size_dhw"].get<std::array<int64_t, 3>>()));
    for (int a = 0; a < 3; ++a) EXPECT_NEAR(c.spacing[a], e["spacing_xyz"][a].get<double>(), 1e-6);
    EXPECT_EQ(c.orientation, e["orientation"].get<std::string>());
    EXPECT_EQ(c.class_voxels, e["class_voxels"].get<std::vector<int64_t>>());
  }
  // Every foreground voxel is sampled (under 10,000 per case): numpy's figures.
  EXPECT_NEAR(f.foreground[0].mean, expected_["foreground"]["mean"].get<double>(), 1e-4);
  EXPECT_NEAR(f.foreground[0].std, expected_["foreground"]["std"].get<double>(), 1e-4);
  EXPECT_LT(f.foreground[0].p00_5, f.foreground[0].p99_5);
  // The same figures whatever the number of workers.
  EXPECT_EQ(to_json(fingerprint(1)).dump(), to_json(f).dump());
}

TEST_F(PlanDataset, PlanWorkedOutByHand) {
  PlanOptions o;
  o.budget_bytes = int64_t(8) << 30;
  o.classes = 3;
  const DatasetPlan p = plan_dataset(fingerprint(2), o);
  // z spacings 2, 2.5, 3, 4, 5: the median 3 is more than 3 x 0.8, so z is the
  // 10th percentile, 2 + 0.4 x 0.5 = 2.2.
  EXPECT_NEAR(p.spacing[0], 0.8, 1e-6);
  EXPECT_NEAR(p.spacing[2], 2.2, 1e-9);
  // Depths at 2.2 mm: 12 x z / 2.2 = 10.9, 13.6, 16.4, 21.8, 27.3; the median rounds to 16.
  EXPECT_EQ(p.median_shape, (std::array<int64_t, 3>{16, 32, 40}));
  // Named CT: clipped to the foreground's percentiles, then its z-score.
  EXPECT_EQ(p.normalization.channels[0].scheme, NormScheme::ct);
  EXPECT_NEAR(p.normalization.channels[0].mean, expected_["foreground"]["mean"].get<double>(), 1e-4);
  ASSERT_EQ(p.configurations.size(), 2u);
  const PlannedConfiguration& c3 = p.configurations[0];
  EXPECT_EQ(c3.name, "3d");
  // The median shape fits. Pooling: z at 2.2 mm is more than twice the
  // in-plane 0.8, so the first level pools in-plane only (16 x 16 x 20 at
  // 2.2 x 1.6 x 1.6 mm); then every axis twice (4 x 4 x 5), where none can
  // pool again and stay >= 4. A batch of 2 x 20,480 voxels is already above 5%
  // of the dataset's 115,200.
  EXPECT_EQ(c3.patch, (std::array<int64_t, 3>{16, 32, 40}));
  EXPECT_EQ(c3.model.depth, 3);
  EXPECT_EQ(pooling_text(c3.model.pooling, 3), "2x2x1,2x2x2,2x2x2");
  EXPECT_EQ(c3.batch, 2);
  EXPECT_EQ(c3.model.start_filters, 32);
  EXPECT_EQ(c3.model.max_filters, 320);
  EXPECT_EQ(c3.model.classes, 3);
  // The figure the plan shows is what the model's planner allocates.
  UNet net(c3.model);
  net.plan({c3.batch, 1, 16, 32, 40, 3});
  EXPECT_EQ(c3.arena_bytes, net.arena_bytes());
  EXPECT_EQ(c3.model_bytes, 16 * net.parameter_count());
  const PlannedConfiguration& c2 = p.configurations[1];
  EXPECT_EQ(c2.name, "2d");
  EXPECT_EQ(c2.patch, (std::array<int64_t, 3>{1, 32, 40}));
  EXPECT_EQ(c2.model.depth, 3);  // 40 -> 5 and 32 -> 4 after 3 poolings
  EXPECT_EQ(pooling_text(c2.model.pooling, 2), "2x2,2x2,2x2");
  EXPECT_EQ(c2.model.max_filters, 512);
}

TEST_F(PlanDataset, ABudgetShrinksThePatchOrIsRefused) {
  PlanOptions o;
  o.classes = 3;
  o.budget_bytes = int64_t(8) << 30;
  const Fingerprint f = fingerprint(2);
  const int64_t roomy = plan_dataset(f, o).configurations[0].bytes();
  o.budget_bytes = roomy * 2 / 3;
  const PlannedConfiguration tight = plan_dataset(f, o).configurations[0];
  EXPECT_LE(tight.bytes(), o.budget_bytes);
  EXPECT_LT(tight.patch[0] * tight.patch[1] * tight.patch[2], 16 * 32 * 40);
  o.budget_bytes = 1 << 20;
  try {
    plan_dataset(f, o);
    FAIL() << "a 1 MiB budget was planned";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--memory-budget"), std::string::npos) << e.what();
  }
}

TEST_F(PlanDataset, PlanFileReadBackAndRefusedWhenBroken) {
  PlanOptions o;
  o.budget_bytes = int64_t(8) << 30;
  o.classes = 3;
  const Fingerprint f = fingerprint(2);
  const DatasetPlan p = plan_dataset(f, o);
  const std::string path = dir_ + "/plan.json";
  std::ofstream(path) << nlohmann::json{{"fingerprint", to_json(f)}, {"plan", to_json(p)}}.dump();
  const PlanChoice c = read_plan(path, "");
  EXPECT_EQ(c.configuration.name, "3d");
  EXPECT_EQ(c.configuration.patch, p.configurations[0].patch);
  EXPECT_EQ(c.configuration.batch, p.configurations[0].batch);
  EXPECT_EQ(c.configuration.model.depth, p.configurations[0].model.depth);
  EXPECT_EQ(c.configuration.model.pooling, p.configurations[0].model.pooling);
  EXPECT_EQ(c.normalization.channels[0].scheme, NormScheme::ct);
  EXPECT_EQ(c.data_dims, 3);
  EXPECT_EQ(read_plan(path, "2d").configuration.model.dims, 2);

  const std::string broken = dir_ + "/broken.json";
  std::ofstream(broken) << R"({"fingerprint": {"dims": 3}, "plan": {"configurations": {"3d": {"dims": 3}}}})";
  try {
    read_plan(broken, "");
    FAIL() << "a plan without its patch was read";
  } catch (const FileError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(broken), std::string::npos) << m;
    EXPECT_NE(m.find("plan.configurations.3d"), std::string::npos) << m;
  }
  EXPECT_THROW(read_plan(dir_ + "/absent.json", ""), FileError);
}

TEST_F(PlanDataset, PlanAndTrainThroughTheBinary) {
  const std::string plan = dir_ + "/cli_plan.json";
  const test::Result r = test::run_unet("plan --data " + test::quote(data()) + " --memory-budget 2 -o " +
                                        test::quote(plan));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("its 10th percentile"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3d: --dims 3 --size 40x32x16"), std::string::npos) << r.out;
  const nlohmann::json j = test::load_json(plan);
  EXPECT_EQ(j["fingerprint"]["cases"].size(), 5u);
  EXPECT_EQ(j["plan"]["configurations"]["3d"]["depth"], 3);
  EXPECT_EQ(j["plan"]["configurations"]["3d"]["pooling"], "2x2x1,2x2x2,2x2x2");

  const std::string run = dir_ + "/run";
  const test::Result t = test::run_unet("train --plan " + test::quote(plan) + " --data " + test::quote(data()) +
                                        " --val-cases case4 --steps 1 --val-every 1 --batch-size 1 --run-dir " +
                                        test::quote(run));
  ASSERT_EQ(t.status, 0) << t.out;
  // The plan's spacing is applied: every case (z 2 to 5 mm) resampled to z 2.2.
  EXPECT_NE(t.out.find("spacing 0.8 x 0.8 x 2.2: 5 of 5 cases resampled"), std::string::npos) << t.out;
  const nlohmann::json config = test::load_json(run + "/run.json");
  EXPECT_NEAR(config["spacing"][2].get<double>(), 2.2, 1e-9);
  EXPECT_EQ(config["model"]["depth"], 3);
  EXPECT_EQ(config["model"]["pooling"], "2x2x1,2x2x2,2x2x2");
  // Deep supervision trains (the plan's default); the weights for prediction
  // carry the full-resolution head alone, the checkpoint everything.
  EXPECT_EQ(config["model"]["deep_supervision"], true);
  const Safetensors best = read_safetensors(run + "/best.safetensors"), last = read_safetensors(run + "/checkpoints/latest/weights.safetensors");
  EXPECT_EQ(best.find("ds1.weight"), nullptr);
  EXPECT_NE(last.find("ds1.weight"), nullptr);
  EXPECT_FALSE(stored_config(best, "best").deep_supervision);
  const test::Result off = test::run_unet("train --plan " + test::quote(plan) + " --data " + test::quote(data()) +
                                          " --no-deep-supervision --val-cases case4 --steps 1 --batch-size 1 "
                                          "--run-dir " + test::quote(run + "_off"));
  ASSERT_EQ(off.status, 0) << off.out;
  EXPECT_FALSE(test::load_json(run + "_off/run.json")["model"].contains("deep_supervision"));
  EXPECT_EQ(config["model"]["max_filters"], 320);
  EXPECT_EQ(config["model"]["norm"], "instance");
  EXPECT_EQ(config["normalization"]["channels"][0]["scheme"], "ct");

  // The 2d configuration trains on slices along z (the coarsest axis), resampled in-plane only.
  EXPECT_EQ(j["plan"]["configurations"]["2d"]["slice_axis"], "z");
  const test::Result slices = test::run_unet("train --plan " + test::quote(plan) + " --configuration 2d --data " +
                                             test::quote(data()) + " --val-cases case4 --steps 1 --batch-size 2 "
                                             "--run-dir " + test::quote(run + "2"));
  ASSERT_EQ(slices.status, 0) << slices.out;
  EXPECT_NE(slices.out.find("spacing 0.8 x 0.8 x as is"), std::string::npos) << slices.out;
  EXPECT_NE(slices.out.find("training slices along z"), std::string::npos) << slices.out;
  // No model options: unet train plans first, into the run folder, and trains what it planned.
  const test::Result planned = test::run_unet("train --data " + test::quote(data()) + " --val-cases case4 --steps 1 "
                                              "--run-dir " + test::quote(run + "_auto"));
  ASSERT_EQ(planned.status, 0) << planned.out;
  EXPECT_NE(planned.out.find("no model options: planning"), std::string::npos) << planned.out;
  EXPECT_TRUE(std::filesystem::exists(run + "_auto/plan.json"));
  const nlohmann::json chosen = test::load_json(run + "_auto/run.json");
  EXPECT_EQ(chosen["model"]["pooling"], "2x2x1,2x2x2,2x2x2");
  EXPECT_EQ(chosen["model"]["max_filters"], 320);

  const test::Result missing = test::run_unet("plan --data " + test::quote(dir_ + "/absent"));
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.out.find("absent"), std::string::npos) << missing.out;
}

TEST(Orientation, AxisCodesAsNibabelNamesThem) {
  EXPECT_EQ(orientation_codes({1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}), "RAS");
  EXPECT_EQ(orientation_codes({-3, 0, 0, 0, 0, -3, 0, 0, 0, 0, 5, 0, 0, 0, 0, 1}), "LPS");
  EXPECT_EQ(orientation_codes({0, 0, 2, 0, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1}), "PSR");
}

}  // namespace
}  // namespace unet
