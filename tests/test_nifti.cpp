// NIfTI reader and writer against nibabel: tests/data/write_nifti.py writes every
// datatype, both byte orders, NIfTI-2, pairs, .nii.gz, 4D, 2D and scaled files, and
// records what nibabel reads back; ours must agree. Broken files are made here from
// a good one, so those tests need no python.
#include "io/nifti.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/image_file.h"
#include "tests/broken_files.h"
#include "tests/generated_files.h"

namespace unet {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using json = nlohmann::json;
using test::quote;
using test::slurp;
using test::load_json;

const std::string kPython = UNET_TEST_PYTHON;
const std::string kScript = std::string(UNET_SOURCE_DIR) + "/tests/data/write_nifti.py";
const std::string kLung = std::string(UNET_SOURCE_DIR) + "/../shared/datasets/lung3d/";

double value_of(const json& j) {
  if (j.is_string()) {
    const std::string s = j.get<std::string>();
    return s == "nan" ? NAN : s == "inf" ? INFINITY : -INFINITY;
  }
  return j.get<double>();
}

// Ours against one nibabel record: shape, values, spacing, affine.
void expect_matches(const Volume& v, const json& e) {
  const auto shape = e["shape"].get<std::vector<int64_t>>();
  ASSERT_GE(shape.size(), 2u);
  EXPECT_EQ(v.w, shape[0]);
  EXPECT_EQ(v.h, shape[1]);
  EXPECT_EQ(v.d, shape.size() >= 3 ? shape[2] : 1);
  EXPECT_EQ(v.c, shape.size() >= 4 ? shape[3] : 1);
  EXPECT_EQ(v.dims, shape.size() >= 3 && shape[2] > 1 ? 3 : 2);
  EXPECT_EQ(v.datatype, e["dtype"].get<std::string>());
  const auto& values = e["values"];
  ASSERT_EQ(v.voxels.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const double want = value_of(values[i]), got = v.voxels[i];
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << "voxel " << i;
    } else if (std::isinf(want)) {
      EXPECT_EQ(got, want) << "voxel " << i;
    } else {
      EXPECT_NEAR(got, want, 1e-6 * std::fabs(want) + 1e-6) << "voxel " << i;  // float32 of the exact value
    }
  }
  const auto zooms = e["zooms"].get<std::vector<double>>();
  for (size_t i = 0; i < 3 && i < zooms.size(); ++i) EXPECT_NEAR(v.spacing[i], zooms[i], 1e-6) << "spacing " << i;
  const auto affine = e["affine"].get<std::vector<double>>();
  ASSERT_EQ(affine.size(), 16u);
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(v.affine[i], affine[i], 1e-5) << "affine element " << i;
  ASSERT_TRUE(v.nifti);
  EXPECT_EQ(v.nifti->qform_code, e["qform_code"].get<int>());
  EXPECT_EQ(v.nifti->sform_code, e["sform_code"].get<int>());
  EXPECT_NEAR(v.nifti->qfac, e["pixdim"][0].get<double>() < 0 ? -1 : 1, 0);
}

class NiftiFiles : public test::GeneratedFilesTest<NiftiFiles> {
 public:
  static constexpr const char* kTag = "nifti";
  static constexpr const char* kGenerator = "write_nifti.py";
  static constexpr const char* kModules = "nibabel, numpy";
  static constexpr const char* kInstall = "pip install nibabel numpy";

 protected:
  static void check(const std::string& name) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(expected_.contains(name)) << "the generator wrote no " << name;
    expect_matches(read_image(dir_ + "/out/" + name), expected_[name]);
  }
  // Our file as nibabel reads it.
  static json nibabel_view(const std::string& path) {
    const std::string out = path + ".json";
    const std::string cmd = quote(kPython) + " " + quote(kScript) + " --dump " + quote(path) + " " + quote(out);
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return load_json(out);
  }
};

TEST_F(NiftiFiles, EveryDatatype) {
  for (const char* t : {"uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"})
    check(std::string("dt_") + t + ".nii");
  EXPECT_EQ(read_image(dir_ + "/out/dt_uint8.nii").full_scale, 255);
  EXPECT_EQ(read_image(dir_ + "/out/dt_int16.nii").full_scale, 32767);
  EXPECT_EQ(read_image(dir_ + "/out/dt_float32.nii").full_scale, 0);
}

TEST_F(NiftiFiles, BigEndian) {
  for (const char* name : {"big_int16.nii", "big_float64.nii", "big_nifti2.nii"}) {
    check(name);
    EXPECT_TRUE(read_nifti(dir_ + "/out/" + name).nifti->big_endian) << name;
  }
}

TEST_F(NiftiFiles, Nifti2) {
  for (const char* name : {"nifti2_float32.nii", "nifti2_int16.nii.gz", "pair2_float32.hdr"}) {
    check(name);
    EXPECT_EQ(read_image(dir_ + "/out/" + name).nifti->version, 2) << name;
  }
}

TEST_F(NiftiFiles, HdrImgPairByEitherName) {
  check("pair_int16.hdr");
  const Volume by_img = read_image(dir_ + "/out/pair_int16.img");
  EXPECT_EQ(by_img.voxels, read_image(dir_ + "/out/pair_int16.hdr").voxels);
}

TEST_F(NiftiFiles, Gzip) { check("gz_float32.nii.gz"); }

TEST_F(NiftiFiles, FourDimensionsAreChannels) {
  check("four_d.nii");
  EXPECT_EQ(read_image(dir_ + "/out/four_d.nii").c, 2);
}

TEST_F(NiftiFiles, TwoDimensional) {
  check("two_d.nii");
  EXPECT_EQ(read_image(dir_ + "/out/two_d.nii").dims, 2);
}

TEST_F(NiftiFiles, AffineFromQformSformOrPixdim) {
  check("qform_only.nii");  // left-handed, qfac -1
  check("no_codes.nii");    // diag(pixdim)
  EXPECT_EQ(nifti_orientation(read_image(dir_ + "/out/qform_only.nii").affine).size(), 3u);
}

TEST_F(NiftiFiles, ScalingSlopeAndIntercept) {
  check("scaled_int16.nii");
  check("scaled_uint8.nii");
  check("slope_zero.nii");  // slope 0: stored values as they are, intercept ignored
}

TEST_F(NiftiFiles, NonFiniteVoxelsAreReadAndCounted) {
  check("nonfinite.nii");
  const Volume v = read_image(dir_ + "/out/nonfinite.nii");
  EXPECT_THAT(describe(v), HasSubstr("1 NaN, 2 Inf"));
  try {
    check_finite(v);
    FAIL() << "check_finite accepted NaN";
  } catch (const FileError& e) {
    EXPECT_THAT(e.what(), HasSubstr("nonfinite.nii"));
    EXPECT_THAT(e.what(), HasSubstr("(x 3, y 0, z 0, channel 0) is NaN; 3 voxels"));
  }
}

TEST_F(NiftiFiles, DescribeNamesOrientationAndAffine) {
  const std::string text = describe(read_image(dir_ + "/out/dt_int16.nii"));
  EXPECT_THAT(text, HasSubstr("NIfTI-1"));
  EXPECT_THAT(text, HasSubstr("5 x 4 x 3"));
  EXPECT_THAT(text, HasSubstr("int16"));
  EXPECT_THAT(text, HasSubstr("1.5 x 2 x 2.5 mm"));
  EXPECT_THAT(text, HasSubstr("orientation: RAS"));
  EXPECT_THAT(text, HasSubstr("affine"));
}

// Our writer, read by nibabel: header, affine and values survive.
TEST_F(NiftiFiles, WriterRoundTripsThroughNibabel) {
  for (const char* input : {"qform_only.nii", "dt_float32.nii", "four_d.nii", "nifti2_float32.nii"}) {
    const Volume in = read_image(dir_ + "/out/" + input);
    const json orig = expected_[input];
    for (const char* type : {"uint8", "int16", "float32"}) {
      for (const char* ext : {".nii", ".nii.gz"}) {
        const std::string out = dir_ + "/ours_" + input + "_" + type + ext;
        SCOPED_TRACE(out);
        write_nifti(out, in, type);
        json got = nibabel_view(out);
        EXPECT_EQ(got["dtype"], type);
        EXPECT_EQ(got["shape"], orig["shape"]);
        EXPECT_EQ(got["qform_code"], orig["qform_code"]);
        EXPECT_EQ(got["sform_code"], orig["sform_code"]);
        for (int i = 0; i < 16; ++i) {
          EXPECT_NEAR(got["affine"][i].get<double>(), orig["affine"][i].get<double>(), 1e-5) << i;
          EXPECT_NEAR(got["qform"][i].get<double>(), orig["qform"][i].get<double>(), 1e-5) << i;
        }
        for (int i = 0; i < 4; ++i) EXPECT_NEAR(got["pixdim"][i].get<double>(), orig["pixdim"][i].get<double>(), 1e-6);
        const auto values = got["values"];
        for (size_t i = 0; i < in.voxels.size(); ++i) {
          double want = in.voxels[i];
          if (std::string(type) == "uint8") want = std::fmin(std::fmax(std::nearbyint(want), 0), 255);
          if (std::string(type) == "int16") want = std::fmin(std::fmax(std::nearbyint(want), -32768), 32767);
          EXPECT_NEAR(values[i].get<double>(), want, 1e-6 * std::fabs(want)) << "voxel " << i;
        }
        const Volume back = read_image(out);  // and ours agrees with nibabel
        expect_matches(back, got);
      }
    }
  }
}

TEST_F(NiftiFiles, WriterWithoutHeaderUsesSpacingAndAffine) {
  Volume v;
  v.w = 3, v.h = 2, v.d = 2, v.dims = 3;
  v.voxels = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  v.spacing = {0.5, 0.75, 2};
  v.affine = {-0.5, 0, 0, 10, 0, 0.75, 0, -4, 0, 0, 2, 1, 0, 0, 0, 1};
  const std::string out = dir_ + "/plain.nii.gz";
  write_nifti(out, v, "int16");
  const json got = nibabel_view(out);
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(got["affine"][i].get<double>(), v.affine[i], 1e-6) << i;
  EXPECT_EQ(got["zooms"], json({0.5, 0.75, 2.0}));
  EXPECT_EQ(got["values"], json({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
}

// --- the real data ----------------------------------------------------------

TEST(NiftiLung, SpacingAndGeometryFromTheHeader) {
  const std::string path = kLung + "id001-128x128x64.nii.gz";
  if (!fs::exists(path)) GTEST_SKIP() << path << " absent (../shared/datasets not mounted)";
  const Volume v = read_image(path);
  EXPECT_EQ(v.w, 128);
  EXPECT_EQ(v.h, 128);
  EXPECT_EQ(v.d, 64);
  EXPECT_EQ(v.dims, 3);
  EXPECT_EQ(v.datatype, "float32");
  EXPECT_NEAR(v.spacing[0], 3.007812, 1e-5);
  EXPECT_NEAR(v.spacing[1], 3.007812, 1e-5);
  EXPECT_NEAR(v.spacing[2], 5.0, 1e-6);
  ASSERT_TRUE(v.nifti);
  EXPECT_EQ(v.nifti->qform_code, 2);
  EXPECT_EQ(v.nifti->sform_code, 1);
  EXPECT_EQ(v.nifti->qfac, -1);
  const double want[16] = {-3.00781202, 0, 0, 190.99606323, 0, 3.00781202, 0, -190.99606323,
                           0, 0, 5, -157.5, 0, 0, 0, 1};  // nibabel's img.affine
  for (int i = 0; i < 16; ++i) EXPECT_NEAR(v.affine[i], want[i], 1e-5) << i;
  EXPECT_EQ(nifti_orientation(v.affine), "LAS");
}

TEST(NiftiLung, EveryVolumeAndMaskHasItsHeadersSpacing) {
  struct Case {
    const char* id;
    double xy, z;  // pixdim as nibabel reads them
  };
  for (const Case& k : {Case{"id001", 3.007812, 5.0}, Case{"id002", 3.257812, 4.765625},
                        Case{"id003", 2.976564, 5.5859375}, Case{"id004", 2.523436, 4.765625}}) {
    for (const std::string suffix : {"-128x128x64.nii.gz", "-128x128x64-msk.nii.gz"}) {
      const std::string path = kLung + k.id + suffix;
      if (!fs::exists(path)) GTEST_SKIP() << path << " absent (../shared/datasets not mounted)";
      SCOPED_TRACE(path);
      const Volume v = read_image(path);
      EXPECT_EQ(v.w * v.h * v.d, 128 * 128 * 64);
      EXPECT_NEAR(v.spacing[0], k.xy, 1e-5);
      EXPECT_NEAR(v.spacing[1], k.xy, 1e-5);
      EXPECT_NEAR(v.spacing[2], k.z, 1e-6);
      EXPECT_NEAR(std::fabs(v.affine[0]), k.xy, 1e-5);  // the sform's scale agrees
    }
  }
}

TEST(NiftiLung, PredictionKeepsTheInputHeader) {
  const std::string path = kLung + "id001-128x128x64-msk.nii.gz";
  if (!fs::exists(path)) GTEST_SKIP() << path << " absent (../shared/datasets not mounted)";
  Volume mask = read_image(path);
  for (float& x : mask.voxels) x = x > 127.5f ? 1.f : 0.f;
  const std::string out = ::testing::TempDir() + "unet_lung_mask_" + std::to_string(::getpid()) + ".nii.gz";
  write_nifti(out, mask, "uint8");
  const Volume back = read_image(out);
  fs::remove(out);
  EXPECT_EQ(back.datatype, "uint8");
  EXPECT_EQ(back.voxels, mask.voxels);
  EXPECT_EQ(back.nifti->qform_code, 2);
  EXPECT_EQ(back.nifti->sform_code, 1);
  EXPECT_EQ(back.nifti->qfac, -1);
  for (int i = 0; i < 16; ++i) {
    EXPECT_NEAR(back.affine[i], mask.affine[i], 1e-5) << i;
    EXPECT_NEAR(back.nifti->qform[i], mask.nifti->qform[i], 1e-5) << i;
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(back.spacing[i], mask.spacing[i]);
}

// --- broken files -----------------------------------------------------------

class NiftiBroken : public test::BrokenFiles {
 protected:
  void SetUp() override {
    make_dir("nifti_broken");
    Volume v;
    v.w = 5, v.h = 4, v.d = 3, v.dims = 3;
    v.voxels.assign(60, 1.5f);
    write_nifti(dir_ + "/good.nii", v, "float32");
    good_ = slurp(dir_ + "/good.nii");
    ASSERT_EQ(good_.size(), 352u + 60 * 4);
  }
  template <typename T>
  std::string patched(const std::string& name, size_t offset, T value) {
    std::string b = good_;
    std::memcpy(&b[offset], &value, sizeof value);
    return write(name, b);
  }
};

TEST_F(NiftiBroken, Truncated) {
  expect_error(write("cut_data.nii", good_.substr(0, 400)), "truncated");
  expect_error(write("cut_header.nii", good_.substr(0, 200)), "truncated header: 200 bytes");
  expect_error(write("empty.nii", ""), "truncated header: 0 bytes");
}

TEST_F(NiftiBroken, TruncatedGzip) {
  Volume v;
  v.w = 64, v.h = 64, v.d = 16, v.dims = 3;
  v.voxels.resize(size_t(v.count()));
  for (size_t i = 0; i < v.voxels.size(); ++i) v.voxels[i] = float(i % 977);
  write_nifti(dir_ + "/big.nii.gz", v, "float32");
  const std::string gz = slurp(dir_ + "/big.nii.gz");
  expect_error(write("cut.nii.gz", gz.substr(0, gz.size() / 2)), "truncated or corrupt");
}

// A small .nii.gz whose header claims 15 GiB must fail without allocating it.
TEST_F(NiftiBroken, GzipClaimingHugeDimensions) {
  Volume v;
  v.w = 4, v.h = 4, v.d = 4, v.dims = 3;
  v.voxels.assign(64, 2.f);
  write_nifti(dir_ + "/small.nii", v, "float32");
  std::string b = slurp(dir_ + "/small.nii");
  const int16_t dims[4] = {3, 2000, 2000, 1000};
  std::memcpy(&b[40], dims, sizeof dims);
  gzFile f = gzopen((dir_ + "/huge.nii.gz").c_str(), "wb");
  gzwrite(f, b.data(), unsigned(b.size()));
  gzclose(f);
  expect_error(dir_ + "/huge.nii.gz", "truncated or corrupt: read 256 of 16000000000 bytes");
}

TEST_F(NiftiBroken, WrongMagicOrSize) {
  expect_error(patched("magic.nii", 344, std::array<char, 4>{'x', 'y', 'z', 0}), "bad magic 'xyz'");
  expect_error(patched("sizeof.nii", 0, int32_t(1234)), "sizeof_hdr is 1234");
  expect_error(write("text.nii", std::string(400, 'a')), "not a NIfTI file");
}

TEST_F(NiftiBroken, BadDimensions) {
  expect_error(patched("zero.nii", 44, int16_t(0)), "dim[2] is 0, expected >= 1");
  expect_error(patched("negative.nii", 42, int16_t(-5)), "dim[1] is -5");
  expect_error(patched("rank.nii", 40, int16_t(9)), "dim[0] is 9, expected 1 to 7");
  expect_error(patched("huge.nii", 42, std::array<int16_t, 4>{30000, 30000, 30000, 30000}), "exceed the limit");
  expect_error(patched("five_d.nii", 40, std::array<int16_t, 6>{5, 5, 4, 3, 1, 2}), "5D");
}

TEST_F(NiftiBroken, UnsupportedDatatype) {
  expect_error(patched("complex.nii", 70, int16_t(32)), "datatype 32");
  expect_error(patched("rgb.nii", 70, int16_t(128)), "not supported");
}

TEST_F(NiftiBroken, HeaderWithoutImage) {
  std::string h = good_.substr(0, 348);
  std::memcpy(&h[344], "ni1", 4);
  float zero = 0;
  std::memcpy(&h[108], &zero, 4);
  expect_error(write("lonely.hdr", h), "lonely.img is missing");
}

TEST_F(NiftiBroken, DirectoryAndMissingFile) {
  fs::create_directories(dir_ + "/folder.nii");
  expect_error(dir_ + "/folder.nii", "is a directory");
  expect_error(dir_ + "/missing.nii.gz", "cannot open: No such file");
  expect_error(dir_ + "/missing.hdr", "cannot open");
  expect_error(write("orphan.img", good_.substr(352)), "orphan.hdr is missing");
}

TEST_F(NiftiBroken, WriterRefusesAndLeavesNothing) {
  Volume v;
  v.w = 2, v.h = 2;
  v.voxels = {0, 1, NAN, 3};
  EXPECT_THROW(write_nifti(dir_ + "/nan.nii", v, "uint8"), std::invalid_argument);
  EXPECT_THROW(write_nifti(dir_ + "/x.png", v, "float32"), std::invalid_argument);
  EXPECT_THROW(write_nifti(dir_ + "/x.nii", v, "complex64"), std::invalid_argument);
  EXPECT_THROW(write_nifti(dir_ + "/no/such/folder/x.nii", v, "float32"), FileError);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) files += e.path().filename() != "good.nii";
  EXPECT_EQ(files, 0u) << "a refused write left a file behind";
  write_nifti(dir_ + "/good.nii", v, "float32");  // replaces, atomically
  EXPECT_TRUE(std::isnan(read_image(dir_ + "/good.nii").voxels[2]));
  files = 0;
  for (auto it = fs::directory_iterator(dir_); it != fs::directory_iterator(); ++it) ++files;
  EXPECT_EQ(files, 1u) << "a temporary file was left behind";
}

}  // namespace
}  // namespace unet
