// TIFF reader and writer against tifffile and Pillow: tests/data/write_tiff.py
// writes every kind the reader takes (8/16/32-bit integers signed and not,
// float32, bilevel, gray, RGB contiguous and planar, palette; one page and
// stacks; strips and tiles; none, LZW, Deflate, PackBits, CCITT group 4; both
// byte orders; BigTIFF; ImageJ's and TIFF's resolution) and what each holds;
// our writer's files go back through tifffile. Broken files (truncated, bad
// magic, an IFD past the end, zero or absurd sizes, pages that disagree) are
// made from our own output, so those tests need no python.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "io/image_file.h"
#include "io/tiff.h"
#include "tests/broken_files.h"
#include "tests/generated_files.h"

namespace unet {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::load_json;
using test::quote;
using test::slurp;

const std::string kPython = UNET_TEST_PYTHON;
const std::string kScript = std::string(UNET_SOURCE_DIR) + "/tests/data/write_tiff.py";

class TiffFiles : public test::GeneratedFilesTest<TiffFiles> {
 public:
  static constexpr const char* kTag = "tiff";
  static constexpr const char* kGenerator = "write_tiff.py";
  static constexpr const char* kModules = "tifffile, PIL, numpy";
  static constexpr const char* kInstall = "apt-get install python3-tifffile python3-pil";
};

TEST_F(TiffFiles, EveryKindReadsBackAsWritten) {
  ASSERT_GE(expected_.size(), 23u);
  for (auto it = expected_.begin(); it != expected_.end(); ++it) {
    SCOPED_TRACE(it.key());
    const json& e = it.value();
    const Volume v = read_image(dir_ + "/out/" + it.key());
    EXPECT_EQ(v.w, e["width"].get<int64_t>());
    EXPECT_EQ(v.h, e["height"].get<int64_t>());
    EXPECT_EQ(v.d, e["depth"].get<int64_t>());
    EXPECT_EQ(v.dims, v.d > 1 ? 3 : 2);
    EXPECT_EQ(v.c, e["channels"].get<int64_t>());
    EXPECT_EQ(v.datatype, e["datatype"].get<std::string>());
    EXPECT_EQ(v.full_scale, e["full_scale"].get<double>());
    const auto spacing = e["spacing"].get<std::vector<double>>();
    for (int a = 0; a < 3; ++a) EXPECT_NEAR(v.spacing[a], spacing[a], 1e-6 * spacing[a]) << "axis " << a;
    // float(int32) rounds as float() of the expected double does.
    const auto values = e["values"].get<std::vector<double>>();
    ASSERT_EQ(v.voxels.size(), values.size());
    int64_t wrong = 0;
    for (size_t i = 0; i < values.size(); ++i) wrong += v.voxels[i] != float(values[i]);
    EXPECT_EQ(wrong, 0) << "of " << values.size() << " samples";
  }
}

TEST_F(TiffFiles, WriterRoundTripsThroughTifffile) {
  for (const char* type : {"uint8", "uint16", "float32"}) {
    SCOPED_TRACE(type);
    Volume v;
    v.c = 1, v.d = 4, v.h = 6, v.w = 9, v.dims = 3;
    v.spacing = {0.5, 0.25, 3};
    const double top = std::string(type) == "uint8" ? 255 : 65535;
    for (int64_t i = 0; i < v.count(); ++i)
      v.voxels.push_back(std::string(type) == "float32" ? float(i) * 0.37f - 9 : float(std::fmod(i * 7919.0, top + 1)));
    const std::string path = dir_ + "/ours_" + type + ".tif";
    write_tiff(path, v, type);
    const Volume back = read_image(path);
    EXPECT_EQ(back.voxels, v.voxels);
    EXPECT_EQ(back.d, 4);
    for (int a = 0; a < 3; ++a) EXPECT_NEAR(back.spacing[a], v.spacing[a], 1e-6) << "axis " << a;
    const std::string out = path + ".json";
    ASSERT_EQ(std::system((quote(kPython) + " " + quote(kScript) + " --dump " + quote(path) + " " + quote(out)).c_str()), 0);
    const json got = load_json(out);
    EXPECT_EQ(got["shape"], (std::vector<int64_t>{4, 6, 9}));
    EXPECT_EQ(got["dtype"], type);
    EXPECT_EQ(got["values"].get<std::vector<float>>(), v.voxels);
    EXPECT_EQ(got["unit"], "mm");
    EXPECT_NEAR(got["x_per_unit"].get<double>(), 2.0, 1e-6);
    EXPECT_NEAR(got["spacing"].get<double>(), 3.0, 1e-9);
  }
}

// --- without python ---------------------------------------------------------

Volume stack(int64_t d, int64_t h, int64_t w) {
  Volume v;
  v.c = 1, v.d = d, v.h = h, v.w = w, v.dims = d > 1 ? 3 : 2;
  for (int64_t i = 0; i < v.count(); ++i) v.voxels.push_back(float(i % 251));
  return v;
}

class TiffLocal : public test::BrokenFiles {
 protected:
  void SetUp() override {
    make_dir("tiff_local");
    write_tiff(dir_ + "/good.tif", stack(3, 16, 16), "uint8");
    good_ = slurp(dir_ + "/good.tif");
    ASSERT_GT(good_.size(), 100u);
  }
  // The first IFD's offset (little-endian classic TIFF, as libtiff writes here).
  uint32_t first_ifd() const {
    uint32_t at;
    std::memcpy(&at, good_.data() + 4, 4);
    return at;
  }
  // good.tif with the first page's value of `tag` (a SHORT or LONG) replaced.
  std::string with_tag(const std::string& name, uint16_t tag, uint32_t value) {
    std::string b = good_;
    const uint32_t ifd = first_ifd();
    uint16_t n;
    std::memcpy(&n, &b[ifd], 2);
    for (uint16_t i = 0; i < n; ++i) {
      const size_t e = ifd + 2 + 12 * i;
      uint16_t t, type;
      std::memcpy(&t, &b[e], 2);
      std::memcpy(&type, &b[e + 2], 2);
      if (t != tag) continue;
      if (type == 3) {
        const uint16_t v16 = uint16_t(value);
        std::memcpy(&b[e + 8], &v16, 2);
      } else {
        std::memcpy(&b[e + 8], &value, 4);
      }
    }
    return write(name, b);
  }
};

TEST_F(TiffLocal, WriterRoundsClampsAndRefuses) {
  Volume v = stack(1, 1, 6);
  v.voxels = {-3, 0.4f, 0.6f, 254.5f, 300, NAN};
  write_tiff(dir_ + "/clamp.tif", v, "uint8");
  EXPECT_EQ(read_image(dir_ + "/clamp.tif").voxels, (std::vector<float>{0, 0, 1, 254, 255, 0}));
  EXPECT_THROW(write_tiff(dir_ + "/x.tif", v, "int64"), std::invalid_argument);
  EXPECT_THROW(write_tiff(dir_ + "/no/such/folder/x.tif", v, "uint8"), FileError);
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_THAT(e.path().filename().string(), ::testing::AnyOf("good.tif", "clamp.tif")) << "a temporary was left";
}

TEST_F(TiffLocal, Truncated) {
  expect_error(write("half.tif", good_.substr(0, good_.size() / 2)), "half.tif");
  expect_error(write("header_only.tif", good_.substr(0, 8)), "not a readable TIFF file");
  expect_error(write("empty.tif", ""), "not a readable TIFF file");
}

TEST_F(TiffLocal, BadMagicAndIfdPastTheEnd) {
  std::string b = good_;
  b[2] = 'Q';
  expect_error(write("magic.tif", b), "not a readable TIFF file");
  expect_error(write("text.tif", "hello, not an image"), "not a readable TIFF file");
  b = good_;
  const uint32_t past = uint32_t(good_.size() + 1000);
  std::memcpy(&b[4], &past, 4);
  expect_error(write("ifd_past_end.tif", b), "not a readable TIFF file");
}

TEST_F(TiffLocal, ZeroOrAbsurdSize) {
  expect_error(with_tag("zero_width.tif", 256, 0), "zero_width.tif");
  expect_error(with_tag("huge.tif", 256, 1u << 30), "huge.tif");
  expect_error(with_tag("bits.tif", 258, 12), "samples of 12 bits");
}

TEST_F(TiffLocal, DirectoryAndMissingFile) {
  fs::create_directories(dir_ + "/folder.tif");
  expect_error(dir_ + "/folder.tif", "folder.tif");
  expect_error(dir_ + "/absent.tif", "absent.tif");
}

}  // namespace
}  // namespace unet
