#include "io/data/dataset.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "io/data/augment.h"
#include "io/image_file.h"

namespace unet {
namespace {
namespace fs = std::filesystem;

const std::string kShared = UNET_SOURCE_DIR "/../shared/datasets";

bool python_ready() {
  static const bool ok =
      std::system((std::string(UNET_TEST_PYTHON) + " -c 'import nibabel, numpy, png' 2>/dev/null").c_str()) == 0;
  return ok;
}

#define REQUIRE_PYTHON()                                                                          \
  if (!python_ready())                                                                            \
  GTEST_SKIP() << UNET_TEST_PYTHON " lacks nibabel, numpy or pypng (tools/setup.sh installs them)"

// A fresh folder per test, and python helpers to fill it.
class DatasetFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("unet_dataset_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& rel) const { return (dir_ / rel).string(); }

  // Runs python with numpy as np, nibabel as nib, png, os and the helpers
  // png8(path, array) and nii(path, array) (float32 unless an integer array), in dir_.
  void python(const std::string& body) {
    const std::string script = path("make.py");
    std::ofstream(script) << "import os, json\nimport numpy as np, nibabel as nib, png\n"
                             "os.chdir(" << dir_ << ")\n"
                             "def mk(p):\n    d = os.path.dirname(p)\n    d and os.makedirs(d, exist_ok=True)\n"
                             "def png8(p, a):\n    mk(p); a = np.asarray(a, dtype=np.uint8)\n"
                             "    png.Writer(a.shape[1], a.shape[0], greyscale=True).write(open(p, 'wb'), a.tolist())\n"
                             "def nii(p, a):\n    mk(p); a = np.asarray(a)\n"
                             "    a = a if a.dtype.kind in 'iu' else a.astype(np.float32)\n"
                             "    nib.save(nib.Nifti1Image(a, np.diag([2.0, 2.0, 3.0, 1.0])), p)\n"
                          << body << "\n";
    ASSERT_EQ(std::system((std::string(UNET_TEST_PYTHON) + " " + script).c_str()), 0) << body;
  }
  void write(const std::string& rel, const std::string& text) {
    fs::create_directories((dir_ / rel).parent_path());
    std::ofstream(path(rel)) << text;
  }

  fs::path dir_;
};

template <class Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const FileError& e) {
    return e.what();
  }
  return "no FileError";
}
#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

std::vector<std::string> ids(const std::vector<Case>& cases) {
  std::vector<std::string> out;
  for (const auto& c : cases) out.push_back(c.id);
  return out;
}

// ---- folders ---------------------------------------------------------------

TEST_F(DatasetFiles, FoldersPairByName) {
  REQUIRE_PYTHON();
  python(R"(
for n in ['2', '10', '1']:
    img = np.arange(12).reshape(3, 4) * 10 + int(n)
    png8('image/%s.png' % n, img)
    png8('label/%s.png' % n, (img % 20 == 0) * 255)
)");
  const Dataset ds = open_folders(dir_.string());
  EXPECT_EQ(ds.layout, "folders");
  EXPECT_EQ(ids(ds.cases), (std::vector<std::string>{"1", "2", "10"}));  // numbers as numbers
  EXPECT_EQ(ds.cases[1].images, std::vector<std::string>{path("image/2.png")});
  EXPECT_EQ(ds.cases[1].label, path("label/2.png"));
  EXPECT_EQ(open_dataset(dir_.string()).cases.size(), 3u);

  LabelSpec spec;
  spec.map = parse_label_map("0:0,255:1");
  CaseData data = load_case(ds.cases[2], spec);  // case 10
  ASSERT_EQ(data.image.w, 4);
  ASSERT_EQ(data.image.h, 3);
  EXPECT_EQ(data.image.voxels[5], 60.f);  // x 1, y 1: 5 * 10 + 10
  EXPECT_EQ(data.label[5], 1);
  EXPECT_EQ(data.label[4], 0);
  const Sample s = to_sample(std::move(data), NormalizationStats{{ChannelNorm{NormScheme::minmax}}});
  EXPECT_EQ(s.shape(), shape2d(1, 1, 3, 4));
  EXPECT_EQ(s.image[0], 0.f);
  EXPECT_EQ(s.image[11], 1.f);
}

TEST_F(DatasetFiles, FoldersAnalyzePairsAreOneCase) {
  REQUIRE_PYTHON();
  python(R"(
for d in ['image', 'label']:
    mk(d + '/p.hdr')
    nib.save(nib.Nifti1Pair(np.ones((3, 2, 2), dtype=np.float32), np.eye(4)), d + '/p.hdr')
)");
  ASSERT_TRUE(fs::exists(path("image/p.img")));
  const Dataset ds = open_folders(dir_.string());
  ASSERT_EQ(ids(ds.cases), std::vector<std::string>{"p"});
  EXPECT_EQ(ds.cases[0].images[0], path("image/p.hdr"));
  EXPECT_EQ(load_case(ds.cases[0], LabelSpec{}).label, std::vector<int32_t>(12, 1));
}

TEST_F(DatasetFiles, FoldersErrors) {
  REQUIRE_PYTHON();
  python("png8('image/a.png', [[1, 2]]); png8('image/b.png', [[1, 2]]); png8('label/a.png', [[0, 255]])");
  std::string m = error_of([&] { open_folders(dir_.string()); });
  EXPECT_HAS(m, "image/b.png has no label");
  EXPECT_HAS(m, "label/b.png");
  DatasetOptions unlabelled;
  unlabelled.require_labels = false;
  const Dataset ds = open_folders(dir_.string(), unlabelled);
  ASSERT_EQ(ds.cases.size(), 2u);
  EXPECT_TRUE(ds.cases[1].label.empty());

  python("png8('label/c.png', [[0, 255]])");
  fs::remove(path("image/b.png"));
  m = error_of([&] { open_folders(dir_.string()); });
  EXPECT_HAS(m, "label/c.png is a label without an image");

  fs::remove_all(path("label"));
  EXPECT_HAS(error_of([&] { open_folders(dir_.string()); }), "label: no such folder");
  fs::remove_all(path("image"));
  fs::create_directories(path("image"));
  fs::create_directories(path("label"));
  EXPECT_HAS(error_of([&] { open_folders(dir_.string()); }), "no cases found");
  EXPECT_HAS(error_of([&] { open_dataset(path("nowhere")); }), "not a dataset");
}

// ---- csv -------------------------------------------------------------------

TEST_F(DatasetFiles, CsvManifest) {
  REQUIRE_PYTHON();
  python(R"(
for i in [1, 2]:
    img = np.arange(24, dtype=np.float32).reshape(4, 3, 2) - 10 * i
    nii('vol/id%03d.nii.gz' % i, img)
    nii('vol/id%03d-msk.nii.gz' % i, (img > 0) * 255.0)
)");
  write("lists/train.csv", "path,pathmsk\n\"../vol/id002.nii.gz\",../vol/id002-msk.nii.gz\n" + path("vol/id001.nii.gz") +
                               ", ../vol/id001-msk.nii.gz\n\n");
  const Dataset ds = open_csv(path("lists/train.csv"));
  EXPECT_EQ(ds.layout, "csv");
  ASSERT_EQ(ids(ds.cases), (std::vector<std::string>{"id001", "id002"}));
  EXPECT_TRUE(fs::equivalent(ds.cases[1].images[0], path("vol/id002.nii.gz")));
  EXPECT_TRUE(fs::equivalent(ds.cases[0].label, path("vol/id001-msk.nii.gz")));
  EXPECT_EQ(open_dataset(path("lists/train.csv")).cases.size(), 2u);

  LabelSpec spec;
  spec.map = parse_label_map("0:0,255:1");
  const CaseData data = load_case(ds.cases[0], spec);
  EXPECT_EQ(data.image.dims, 3);
  EXPECT_EQ(data.image.w, 4);  // NIfTI i is W
  EXPECT_EQ(data.image.d, 2);
  // nibabel's [x, y, z] is voxels[(z * h + y) * w + x]: img[3, 2, 1] = 3 * 6 + 2 * 2 + 1 - 10.
  EXPECT_EQ(data.image.voxels[(1 * 3 + 2) * 4 + 3], 13.f);
  EXPECT_EQ(data.label[(1 * 3 + 2) * 4 + 3], 1);
  EXPECT_EQ(data.label[0], 0);

  write("other.csv", "image;mask\n");
  write("cols.csv", "img,seg\nvol/id001.nii.gz,vol/id001-msk.nii.gz\n");
  DatasetOptions opt;
  opt.image_column = "img", opt.label_column = "seg";
  EXPECT_EQ(open_csv(path("cols.csv"), opt).cases.size(), 1u);
  std::string m = error_of([&] { open_csv(path("cols.csv")); });
  EXPECT_HAS(m, "cols.csv: no column \"path\"");
  EXPECT_HAS(m, "img, seg");
  EXPECT_HAS(m, "--image-column");
}

TEST_F(DatasetFiles, CsvErrors) {
  REQUIRE_PYTHON();
  python("nii('a.nii.gz', np.zeros((2, 2, 2))); nii('a-msk.nii.gz', np.zeros((2, 2, 2)))");
  write("nolabel.csv", "path,pathmsk\na.nii.gz,\n");
  EXPECT_HAS(error_of([&] { open_csv(path("nolabel.csv")); }), "row 2: a.nii.gz has no label");
  write("noimage.csv", "path,pathmsk\n,a-msk.nii.gz\n");
  EXPECT_HAS(error_of([&] { open_csv(path("noimage.csv")); }), "a label without an image");
  write("missing.csv", "path,pathmsk\nb.nii.gz,a-msk.nii.gz\n");
  EXPECT_HAS(error_of([&] { open_csv(path("missing.csv")); }), "b.nii.gz does not exist");
  write("empty.csv", "path,pathmsk\n");
  EXPECT_HAS(error_of([&] { open_csv(path("empty.csv")); }), "no cases found");
  write("twice.csv", "path,pathmsk\na.nii.gz,a-msk.nii.gz\na.nii.gz,a-msk.nii.gz\n");
  EXPECT_HAS(error_of([&] { open_csv(path("twice.csv")); }), "appears twice");
  EXPECT_HAS(error_of([&] { open_csv(path("absent.csv")); }), "cannot open");
  // A name the system refuses (found by the CSV fuzz target): an error naming the row, not a crash.
  write("too_long.csv", "path,pathmsk\n" + std::string(5000, 'u') + ".nii.gz,a-msk.nii.gz\n");
  EXPECT_HAS(error_of([&] { open_csv(path("too_long.csv")); }), "row 2: ");
}

// ---- decathlon -------------------------------------------------------------

const char* kNnunetJson = R"({"channel_names": {"0": "T2", "1": "ADC"},
  "labels": {"background": 0, "peripheral": 1, "transition": 2},
  "numTraining": 2, "file_ending": ".nii.gz"})";

TEST_F(DatasetFiles, DecathlonNnunet) {
  REQUIRE_PYTHON();
  python(R"(
for c in ['case_0002', 'case_0010']:
    nii('imagesTr/%s_0000.nii.gz' % c, np.ones((4, 3, 2)))
    nii('imagesTr/%s_0001.nii.gz' % c, np.full((4, 3, 2), 7.0))
    nii('labelsTr/%s.nii.gz' % c, np.full((4, 3, 2), 2, dtype=np.uint8))
)");
  write("dataset.json", kNnunetJson);
  const Dataset ds = open_dataset(dir_.string());
  EXPECT_EQ(ds.layout, "decathlon");
  EXPECT_EQ(ds.channels, (std::vector<std::string>{"T2", "ADC"}));
  EXPECT_EQ(ds.classes, (std::vector<std::string>{"background", "peripheral", "transition"}));
  ASSERT_EQ(ids(ds.cases), (std::vector<std::string>{"case_0002", "case_0010"}));
  EXPECT_EQ(ds.cases[0].images.size(), 2u);
  EXPECT_EQ(ds.cases[0].images[1], path("imagesTr/case_0002_0001.nii.gz"));
  EXPECT_EQ(ds.cases[0].label, path("labelsTr/case_0002.nii.gz"));

  LabelSpec spec;
  spec.classes = 3;
  const CaseData data = load_case(ds.cases[1], spec);
  EXPECT_EQ(data.image.c, 2);
  EXPECT_EQ(data.image.voxels[0], 1.f);
  EXPECT_EQ(data.image.voxels[24], 7.f);
  EXPECT_EQ(data.label[0], 2);
}

TEST_F(DatasetFiles, DecathlonMsd) {
  REQUIRE_PYTHON();
  python(R"(
nii('imagesTr/la_003.nii.gz', np.zeros((3, 3, 2, 2)))
nii('labelsTr/la_003.nii.gz', np.zeros((3, 3, 2), dtype=np.uint8))
)");
  write("dataset.json", R"({"name": "Heart", "modality": {"0": "MRI"}, "labels": {"0": "background", "1": "left atrium"},
    "training": [{"image": "./imagesTr/la_003.nii.gz", "label": "./labelsTr/la_003.nii.gz"}], "test": []})");
  const Dataset ds = open_decathlon(dir_.string());
  EXPECT_EQ(ds.channels, std::vector<std::string>{"MRI"});
  EXPECT_EQ(ds.classes, (std::vector<std::string>{"background", "left atrium"}));
  ASSERT_EQ(ids(ds.cases), std::vector<std::string>{"la_003"});
  EXPECT_EQ(ds.cases[0].label, path("labelsTr/la_003.nii.gz"));
}

TEST_F(DatasetFiles, DecathlonErrors) {
  REQUIRE_PYTHON();
  python(R"(
nii('imagesTr/c_0000.nii.gz', np.zeros((2, 2, 2)))
nii('imagesTr/c_0001.nii.gz', np.zeros((2, 2, 2)))
nii('labelsTr/c.nii.gz', np.zeros((2, 2, 2), dtype=np.uint8))
)");
  const std::string json = path("dataset.json");
  EXPECT_HAS(error_of([&] { open_decathlon(dir_.string()); }), "dataset.json: cannot open");
  write("dataset.json", "{\"channel_names\": ");
  EXPECT_HAS(error_of([&] { open_decathlon(dir_.string()); }), "dataset.json: not valid JSON");
  write("dataset.json", R"({"labels": {"background": 0}})");
  EXPECT_HAS(error_of([&] { open_decathlon(dir_.string()); }), "no \"channel_names\"");
  write("dataset.json", R"({"channel_names": {"0": "CT"}})");
  EXPECT_HAS(error_of([&] { open_decathlon(dir_.string()); }), "no \"labels\"");
  write("dataset.json", R"({"channel_names": {"0": "CT"}, "labels": {"background": 0, "x": [1, 2]}})");
  EXPECT_HAS(error_of([&] { open_decathlon(dir_.string()); }), "regions are not supported");
  write("dataset.json", R"({"channel_names": {"0": "CT"}, "labels": {"background": 0, "x": 2}})");
  EXPECT_HAS(error_of([&] { open_decathlon(dir_.string()); }), "skips class value 1");
  write("dataset.json", R"({"channel_names": {"0": "CT"}, "labels": {"background": 0}})");
  EXPECT_HAS(error_of([&] { open_decathlon(dir_.string()); }), "c_0001.nii.gz: channel 1 beyond the 1 channels");
  write("dataset.json", R"({"channel_names": {"0": "CT", "1": "PET", "2": "MR"}, "labels": {"background": 0}})");
  EXPECT_HAS(error_of([&] { open_decathlon(dir_.string()); }), "c_0002.nii.gz is missing");
  write("dataset.json", R"({"channel_names": {"0": "CT", "1": "PET"}, "labels": {"background": 0}})");
  EXPECT_EQ(open_decathlon(dir_.string()).cases.size(), 1u);
  python("nii('labelsTr/d.nii.gz', np.zeros((2, 2, 2), dtype=np.uint8))");
  EXPECT_HAS(error_of([&] { open_decathlon(dir_.string()); }), "labelsTr/d.nii.gz is a label without an image");
  fs::remove(path("labelsTr/d.nii.gz"));
  fs::remove(path("labelsTr/c.nii.gz"));
  EXPECT_HAS(error_of([&] { open_decathlon(dir_.string()); }), "has no label: expected " + path("labelsTr/c.nii.gz"));
}

// ---- loading ---------------------------------------------------------------

TEST_F(DatasetFiles, LoadErrors) {
  REQUIRE_PYTHON();
  python(R"(
nii('a.nii.gz', np.zeros((4, 3, 2)))
nii('small-msk.nii.gz', np.zeros((4, 3, 1), dtype=np.uint8))
img = np.zeros((4, 3, 2)); img[1, 2, 0] = np.nan
nii('nan.nii.gz', img)
nii('frac-msk.nii.gz', np.full((4, 3, 2), 0.25))
)");
  LabelSpec spec;
  std::string m = error_of([&] { load_case(Case{"a", {path("a.nii.gz")}, path("small-msk.nii.gz")}, spec); });
  EXPECT_HAS(m, "image and label of different shapes");
  EXPECT_HAS(m, path("a.nii.gz") + " is 4x3x2");
  EXPECT_HAS(m, path("small-msk.nii.gz") + " is 4x3");  // one slice: a 2D file
  m = error_of([&] { load_case(Case{"n", {path("nan.nii.gz")}, ""}, spec); });
  EXPECT_HAS(m, "nan.nii.gz: voxel (x 1, y 2, z 0, channel 0) is NaN");
  m = error_of([&] { load_case(Case{"a", {path("a.nii.gz"), path("small-msk.nii.gz")}, ""}, spec); });
  EXPECT_HAS(m, "different grids");
  m = error_of([&] { load_case(Case{"a", {path("a.nii.gz")}, path("frac-msk.nii.gz")}, spec); });
  EXPECT_HAS(m, "frac-msk.nii.gz holds non-integer values (0.25 .. 0.25)");
  const CaseData unlabelled = load_case(Case{"a", {path("a.nii.gz")}, ""}, spec);
  EXPECT_TRUE(unlabelled.label.empty());
}

TEST_F(DatasetFiles, SaveSampleForInspection) {
  REQUIRE_PYTHON();
  Sample s;
  s.h = 2, s.w = 3;
  s.image = {-1, 0, 1, 2, 3, 4};
  s.label = {0, 1, 2, 0, 1, 2};
  save_sample(s, path("aug_0"));
  const Volume img = read_image(path("aug_0_image.png")), lab = read_image(path("aug_0_label.png"));
  EXPECT_EQ(img.voxels, (std::vector<float>{0, 51, 102, 153, 204, 255}));
  EXPECT_EQ(lab.voxels, (std::vector<float>{0, 128, 255, 0, 128, 255}));
  Sample v;
  v.d = 2, v.h = 2, v.w = 2, v.dims = 3, v.c = 2;
  v.image.assign(16, 1.5f);
  v.label.assign(8, 1);
  save_sample(v, path("aug_1"));
  const Volume vi = read_image(path("aug_1_image.nii.gz")), vl = read_image(path("aug_1_label.nii.gz"));
  EXPECT_EQ(vi.c, 2);
  EXPECT_EQ(vi.voxels, v.image);
  EXPECT_EQ(vl.voxels, std::vector<float>(8, 1.f));
}

// ---- splits ----------------------------------------------------------------

Dataset numbered(int n) {
  Dataset ds;
  ds.source = "numbered";
  for (int i = 0; i < n; ++i) ds.cases.push_back(Case{std::to_string(i), {std::to_string(i) + ".png"}, ""});
  return ds;
}

TEST(DatasetSplit, ByIds) {
  const Dataset ds = numbered(5);
  Split s = split_by_ids(ds, {"3", "1"});
  EXPECT_EQ(ids(s.val), (std::vector<std::string>{"3", "1"}));
  EXPECT_EQ(ids(s.train), (std::vector<std::string>{"0", "2", "4"}));
  s = split_by_ids(ds, {"4"}, {"0", "1"});
  EXPECT_EQ(ids(s.train), (std::vector<std::string>{"0", "1"}));
  EXPECT_HAS(error_of([&] { split_by_ids(ds, {"9"}); }), "case \"9\", which is not in the dataset");
  EXPECT_HAS(error_of([&] { split_by_ids(ds, {"1"}, {"1"}); }), "in both");
}

TEST(DatasetSplit, FractionIsSeededAndDisjoint) {
  const Dataset ds = numbered(25);
  const Split a = split_fraction(ds, 0.2, 7), b = split_fraction(ds, 0.2, 7), c = split_fraction(ds, 0.2, 8);
  EXPECT_EQ(a.val.size(), 5u);
  EXPECT_EQ(a.train.size(), 20u);
  EXPECT_EQ(ids(a.val), ids(b.val));
  EXPECT_NE(ids(a.val), ids(c.val));
  std::set<std::string> all;
  for (const auto& v : {a.train, a.val})
    for (const auto& x : v) EXPECT_TRUE(all.insert(x.id).second);
  EXPECT_EQ(all.size(), 25u);
  EXPECT_EQ(split_fraction(numbered(4), 0.1, 1).val.size(), 1u);  // at least one
  EXPECT_EQ(split_fraction(numbered(4), 0, 1).val.size(), 0u);
  EXPECT_THROW(split_fraction(ds, 1.0, 1), std::invalid_argument);
}

TEST(DatasetSplit, KFoldCoversEveryCaseOnce) {
  const Dataset ds = numbered(11);
  std::map<std::string, int> seen;
  for (int f = 0; f < 5; ++f) {
    const Split s = split_kfold(ds, f, 5, 3);
    EXPECT_EQ(s.val.size(), f == 0 ? 3u : 2u);
    EXPECT_EQ(s.train.size() + s.val.size(), 11u);
    for (const auto& c : s.val) ++seen[c.id];
    EXPECT_EQ(ids(s.val), ids(split_kfold(ds, f, 5, 3).val));
  }
  EXPECT_EQ(seen.size(), 11u);
  for (const auto& [id, n] : seen) EXPECT_EQ(n, 1) << id;
  EXPECT_THROW(split_kfold(ds, 5, 5, 3), std::invalid_argument);
  EXPECT_THROW(split_kfold(ds, 0, 1, 3), std::invalid_argument);
  EXPECT_THROW(split_kfold(numbered(3), 0, 4, 3), std::invalid_argument);
}

// ---- the real data ---------------------------------------------------------

TEST(DatasetReal, IsbiParses) {
  const std::string root = kShared + "/isbi2012/train";
  if (!fs::is_directory(root)) GTEST_SKIP() << root << " is absent (see datasets/ for how to fetch it)";
  const Dataset ds = open_dataset(root);
  ASSERT_EQ(ds.cases.size(), 25u);
  EXPECT_EQ(ds.cases[2].id, "2");
  EXPECT_EQ(ds.cases[24].id, "24");
  LabelSpec spec;  // membrane (stored 0) is the foreground
  spec.map = parse_label_map("0:1,255:0");
  const CaseData data = load_case(ds.cases[0], spec);
  EXPECT_EQ(data.image.w, 512);
  EXPECT_EQ(data.image.h, 512);
  EXPECT_EQ(data.image.dims, 2);
  double fg = 0;
  for (int32_t v : data.label) fg += v;
  fg /= data.label.size();
  EXPECT_GT(fg, 0.15);
  EXPECT_LT(fg, 0.30);
  // The k-fold split of 25 slices in 5.
  EXPECT_EQ(split_kfold(ds, 0, 5, 0).val.size(), 5u);
}

TEST(DatasetReal, LungParsesAndNeedsAThreshold) {
  const std::string root = kShared + "/lung3d";
  if (!fs::is_directory(root)) GTEST_SKIP() << root << " is absent (see datasets/ for how to fetch it)";
  // The tutorial's manifest form, written beside a copy-free list of the files.
  const fs::path csv = fs::temp_directory_path() / ("unet_lung_" + std::to_string(::getpid()) + ".csv");
  {
    std::ofstream out(csv);
    out << "path,pathmsk\n";
    for (int i = 1; i <= 4; ++i) {
      char id[8];
      std::snprintf(id, sizeof id, "id%03d", i);
      out << root << "/" << id << "-128x128x64.nii.gz," << root << "/" << id << "-128x128x64-msk.nii.gz\n";
    }
  }
  const Dataset ds = open_csv(csv.string());
  fs::remove(csv);
  ASSERT_EQ(ds.cases.size(), 4u);
  EXPECT_EQ(ds.cases[0].id, "id001-128x128x64");
  LabelSpec plain;
  const std::string m = error_of([&] { load_case(ds.cases[0], plain); });
  EXPECT_HAS(m, "id001-128x128x64-msk.nii.gz holds non-integer values");
  EXPECT_HAS(m, "--label-threshold 127.5");
  LabelSpec spec;
  spec.binarize = true;
  CaseData data = load_case(ds.cases[0], spec);
  EXPECT_EQ(data.image.dims, 3);
  EXPECT_EQ(data.image.w, 128);
  EXPECT_EQ(data.image.d, 64);
  double fg = 0;
  for (int32_t v : data.label) fg += v;
  fg /= data.label.size();
  EXPECT_GT(fg, 0.10);
  EXPECT_LT(fg, 0.18);
  // nnU-Net's CT scheme over the foreground, then a sample.
  NormalizationBuilder nb({ChannelNorm{NormScheme::ct}});
  nb.add(data.image, data.label.data());
  const NormalizationStats stats = nb.finish();
  EXPECT_LT(stats.channels[0].lo, stats.channels[0].mean);
  EXPECT_GT(stats.channels[0].hi, stats.channels[0].mean);
  const Sample s = to_sample(std::move(data), stats);
  for (float v : s.image) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace unet
