// Resampling to a spacing against scipy (zoom, order 1, grid_mode=True: the
// same voxel centres) on a case nibabel wrote: the image, the labels per
// class, the grid, the spacing and the affine; a round trip back to the
// original spacing within a stated error; and through the binary, training at
// a spacing and predicting an input at another spacing and size into masks of
// that input's own grid and affine.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>

#include "engine/storage/checkpoint.h"
#include "io/data/resample.h"
#include "io/nifti.h"
#include "tests/generated_files.h"
#include "tests/run_binary.h"

namespace unet {
namespace {

class Resample : public test::GeneratedFilesTest<Resample> {
 public:
  static constexpr const char* kTag = "resample";
  static constexpr const char* kGenerator = "write_resample_case.py";
  static constexpr const char* kModules = "nibabel, numpy, scipy";
  static constexpr const char* kInstall = "tools/setup.sh installs them";

 protected:
  static std::string file(const std::string& name) { return dir_ + "/out/" + name; }
  static std::vector<int32_t> labels(const Volume& v) { return std::vector<int32_t>(v.voxels.begin(), v.voxels.end()); }
  static constexpr Spacing kTarget{0.8, 0.8, 2.0};
};

double range(const std::vector<float>& v) {
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return double(*hi - *lo);
}

TEST_F(Resample, ImageGridSpacingAndAffineMatchScipyAndNibabel) {
  const Volume in = read_nifti(file("case.nii.gz")), ref = read_nifti(file("case_at_target.nii.gz"));
  const Volume out = resample_image(in, kTarget);
  ASSERT_EQ(out.w, expected_["target_grid_xyz"][0].get<int64_t>());
  ASSERT_EQ(out.h, expected_["target_grid_xyz"][1].get<int64_t>());
  ASSERT_EQ(out.d, expected_["target_grid_xyz"][2].get<int64_t>());
  ASSERT_TRUE(out.same_grid(ref));
  double worst = 0;
  for (size_t i = 0; i < out.voxels.size(); ++i) worst = std::max(worst, double(std::fabs(out.voxels[i] - ref.voxels[i])));
  EXPECT_LT(worst, 1e-5 * range(ref.voxels)) << "largest difference from scipy";
  for (int a = 0; a < 3; ++a)  // the file's pixdim is float32
    EXPECT_NEAR(out.spacing[a], expected_["target_spacing"][a].get<double>(), 1e-6);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c) {
      EXPECT_NEAR(out.affine[r * 4 + c], expected_["target_affine"][r][c].get<double>(), 1e-6) << r << "," << c;
      EXPECT_NEAR(out.affine[r * 4 + c], ref.affine[r * 4 + c], 1e-5) << "as nibabel stored it";
    }
  EXPECT_EQ(out.nifti, nullptr);  // the file's header describes the file's grid
}

TEST_F(Resample, LabelsPerClassAsScipyAndNoClassLost) {
  const Volume in = read_nifti(file("case_label.nii.gz")), ref = read_nifti(file("case_label_at_target.nii.gz"));
  const std::vector<int32_t> out = resample_labels(labels(in), in.grid(), ref.grid());
  const std::vector<int32_t> want = labels(ref);
  ASSERT_EQ(out.size(), want.size());
  int64_t differ = 0;
  for (size_t i = 0; i < out.size(); ++i) differ += out[i] != want[i];
  std::printf("labels: %lld of %zu voxels differ from scipy's\n", static_cast<long long>(differ), out.size());
  // Exact but for ties (equal class weights) that float rounding breaks otherwise.
  EXPECT_LE(double(differ), 0.002 * double(out.size())) << differ << " of " << out.size() << " voxels differ";
  EXPECT_EQ(std::set<int32_t>(out.begin(), out.end()), (std::set<int32_t>{0, 1, 2}));
}

// To 0.8 x 0.8 x 2 mm and back to 1.2 x 1.2 x 3. Linear interpolation smooths:
// for blobs 2 voxels wide (sigma) along z, the image comes back within 5% of
// its range at worst (measured: 3.9%) and 0.5% on average (0.39%); each
// class's voxels within Dice 0.95 of the original.
TEST_F(Resample, RoundTripWithinTheStatedError) {
  const Volume in = read_nifti(file("case.nii.gz")), lab = read_nifti(file("case_label.nii.gz"));
  const Volume back = resample_image(resample_image(in, kTarget), in.spacing);
  ASSERT_TRUE(back.same_grid(in));
  double worst = 0, mean = 0;
  for (size_t i = 0; i < in.voxels.size(); ++i) {
    const double e = std::fabs(back.voxels[i] - in.voxels[i]);
    worst = std::max(worst, e), mean += e / double(in.voxels.size());
  }
  std::printf("round trip: largest error %.2f%%, mean %.3f%% of the range\n", 100 * worst / range(in.voxels),
              100 * mean / range(in.voxels));
  EXPECT_LT(worst, 0.05 * range(in.voxels));
  EXPECT_LT(mean, 0.005 * range(in.voxels));
  for (int a = 0; a < 16; ++a) EXPECT_NEAR(back.affine[a], in.affine[a], 1e-9) << a;
  const std::array<int64_t, 3> fine = resampled_grid(in.grid(), in.spacing, kTarget, 3);
  const std::vector<int32_t> original = labels(lab);
  const std::vector<int32_t> there = resample_labels(resample_labels(original, in.grid(), fine), fine, in.grid());
  for (int32_t k : {1, 2}) {
    double both = 0, a = 0, b = 0;
    for (size_t i = 0; i < original.size(); ++i) {
      both += original[i] == k && there[i] == k;
      a += original[i] == k;
      b += there[i] == k;
    }
    EXPECT_GT(2 * both / (a + b), 0.95) << "class " << k;
  }
}

TEST(ResampleGrid, KeepsTheExtentAndLeavesA2DDepthAlone) {
  EXPECT_EQ(resampled_grid({64, 128, 128}, {3, 3, 5}, {1.5, 1.5, 2.5}, 3), (std::array<int64_t, 3>{128, 256, 256}));
  EXPECT_EQ(resampled_grid({1, 100, 60}, {0.5, 0.5, 7}, {1, 1, 1}, 2), (std::array<int64_t, 3>{1, 50, 30}));
  EXPECT_EQ(resampled_grid({3, 4, 4}, {1, 1, 1}, {10, 10, 10}, 3), (std::array<int64_t, 3>{1, 1, 1}));
  EXPECT_EQ(resampled_grid({10, 24, 30}, {1.2, 1.2, 3}, {2.4, 2.4, 0}, 3), (std::array<int64_t, 3>{10, 12, 15}));
  EXPECT_TRUE(same_spacing({2.4, 2.4, 3}, {2.4, 2.4, 0}, 3));  // a 0 target keeps the axis
  EXPECT_TRUE(same_spacing({1, 1, 3}, {1.0005, 1, 3}, 3));
  EXPECT_FALSE(same_spacing({1, 1, 3}, {1, 1, 3.1}, 3));
  EXPECT_TRUE(same_spacing({1, 1, 3}, {1, 1, 9}, 2));  // a 2D image has no z to compare
  const std::vector<float> same{1, 2, 3, 4};
  EXPECT_EQ(resample_linear(same, 1, {1, 2, 2}, {1, 2, 2}), same);
}

// Trained at a spacing (the cases resampled when read; the spacing in the
// weights and the ONNX file), the model predicts an input at another spacing
// and size: the mask has the input's grid and affine.
TEST_F(Resample, PredictAtAnotherSpacingWritesTheInputsGrid) {
  namespace fs = std::filesystem;
  const std::string run = dir_ + "/run", pred = dir_ + "/pred";
  const test::Result t = test::run_unet(
      "train --data " + test::quote(file("data.csv")) + " --dims 3 --spacing 2.4,2.4,3 --size 16x16x8 --depth 1 "
      "--pooling 2x2x1 --filters 4 --batch-size 1 --classes 3 --steps 2 --val-cases c1 --val-every 2 --workers 1 "
      "--run-dir " + test::quote(run));
  ASSERT_EQ(t.status, 0) << t.out;
  EXPECT_NE(t.out.find("spacing 2.4 x 2.4 x 3: 2 of 2 cases resampled"), std::string::npos) << t.out;
  const Safetensors w = read_safetensors(run + "/best.safetensors");
  ASSERT_TRUE(w.metadata.count("unet.spacing"));
  EXPECT_EQ(nlohmann::json::parse(w.metadata.at("unet.spacing")), nlohmann::json::parse("[2.4, 2.4, 3.0]"));

  const test::Result p = test::run_unet("predict -w " + test::quote(run + "/best.safetensors") + " " +
                                        test::quote(file("other.nii.gz")) + " -o " + test::quote(pred) +
                                        " --probabilities");
  ASSERT_EQ(p.status, 0) << p.out;
  EXPECT_NE(p.out.find("predicted at the model's spacing 2.4 x 2.4 x 3"), std::string::npos) << p.out;
  const Volume input = read_nifti(file("other.nii.gz"));
  for (const char* name : {"other_mask.nii.gz", "other_prob.nii.gz"}) {
    const Volume m = read_nifti(pred + "/" + name);
    EXPECT_TRUE(m.same_grid(input)) << name << ": " << m.w << "x" << m.h << "x" << m.d;
    for (int a = 0; a < 16; ++a) EXPECT_NEAR(m.affine[a], input.affine[a], 1e-6) << name << " affine " << a;
  }
  EXPECT_EQ(read_nifti(pred + "/other_prob.nii.gz").c, 3);

  const std::string onnx = dir_ + "/model.onnx";
  const test::Result e = test::run_unet("export -w " + test::quote(run + "/best.safetensors") + " --onnx " +
                                        test::quote(onnx));
  ASSERT_EQ(e.status, 0) << e.out;
  EXPECT_NE(test::slurp(onnx).find("unet.spacing"), std::string::npos) << "the spacing rides in the ONNX metadata";

}

// A 2D net on the volumes: trained on their slices (resampled in-plane, z as
// it is), it predicts a volume at another spacing slice by slice into a mask
// of that volume's grid and affine; along another axis too.
TEST_F(Resample, TwoDNetOnSlicesOfVolumes) {
  for (const char* axis : {"z", "x"}) {
    SCOPED_TRACE(axis);
    const std::string run = dir_ + "/run2d_" + axis, pred = dir_ + "/pred2d_" + axis;
    const test::Result t = test::run_unet(
        "train --data " + test::quote(file("data.csv")) + " --dims 2 --slice-axis " + axis +
        " --spacing 2.4,2.4 --size 16x8 --depth 1 --filters 4 --batch-size 2 --classes 3 --steps 2 --val-cases c1 "
        "--val-every 2 --workers 1 --run-dir " + test::quote(run));
    ASSERT_EQ(t.status, 0) << t.out;
    EXPECT_NE(t.out.find("spacing 2.4 x 2.4 x as is: 2 of 2 cases resampled"), std::string::npos) << t.out;
    // Resampled in-plane, 30 x 24 x 10 voxels become 15 x 12 x 10: 10 slices along z, 15 along x.
    const std::string slices = std::string(axis) == "z" ? "10 training slices along z" : "15 training slices along x";
    EXPECT_NE(t.out.find(slices), std::string::npos) << t.out;
    const Safetensors w = read_safetensors(run + "/best.safetensors");
    EXPECT_EQ(w.metadata.at("unet.slice_axis"), axis);
    const test::Result p = test::run_unet("predict -w " + test::quote(run + "/best.safetensors") + " " +
                                          test::quote(file("other.nii.gz")) + " -o " + test::quote(pred));
    ASSERT_EQ(p.status, 0) << p.out;
    const Volume input = read_nifti(file("other.nii.gz")), m = read_nifti(pred + "/other_mask.nii.gz");
    EXPECT_TRUE(m.same_grid(input)) << m.w << "x" << m.h << "x" << m.d;
    EXPECT_EQ(m.dims, 3);
    for (int a = 0; a < 16; ++a) EXPECT_NEAR(m.affine[a], input.affine[a], 1e-6) << a;
  }
}

}  // namespace
}  // namespace unet
