// PNG reader and writer against pypng: tests/data/write_png.py writes every bit
// depth and colour type (palette and interlaced included) with the values it
// wrote; ours must read exactly those. Damaged files are made here from one of
// our own, so those tests need no python.
#include "io/png.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
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
const std::string kScript = std::string(UNET_SOURCE_DIR) + "/tests/data/write_png.py";
const std::string kIsbi = std::string(UNET_SOURCE_DIR) + "/../shared/datasets/isbi2012/train/";

Volume slice(int64_t c, int64_t h, int64_t w, std::vector<float> values) {
  Volume v;
  v.c = c, v.h = h, v.w = w;
  v.voxels = std::move(values);
  return v;
}

class PngFiles : public test::GeneratedFilesTest<PngFiles> {
 public:
  static constexpr const char* kTag = "png";
  static constexpr const char* kGenerator = "write_png.py";
  static constexpr const char* kModules = "png";
  static constexpr const char* kInstall = "pip install pypng";

 protected:
  static void check(const std::string& name) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(expected_.contains(name)) << "the generator wrote no " << name;
    const json& e = expected_[name];
    const Volume v = read_image(dir_ + "/out/" + name);
    EXPECT_EQ(v.w, e["width"].get<int64_t>());
    EXPECT_EQ(v.h, e["height"].get<int64_t>());
    EXPECT_EQ(v.c, e["channels"].get<int64_t>());
    EXPECT_EQ(v.d, 1);
    EXPECT_EQ(v.dims, 2);
    EXPECT_EQ(v.full_scale, e["full_scale"].get<double>());
    EXPECT_EQ(v.datatype, e["datatype"].get<std::string>());
    const auto values = e["values"].get<std::vector<float>>();
    EXPECT_EQ(v.voxels, values);
  }
  static json pypng_view(const std::string& path) {
    const std::string out = path + ".json";
    const std::string cmd = quote(kPython) + " " + quote(kScript) + " --dump " + quote(path) + " " + quote(out);
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return load_json(out);
  }
};

TEST_F(PngFiles, GrayEveryBitDepth) {
  for (const char* name : {"gray1.png", "gray2.png", "gray4.png", "gray8.png", "gray16.png"}) check(name);
}

TEST_F(PngFiles, Interlaced) {
  for (const char* name : {"gray1_interlaced.png", "gray8_interlaced.png", "gray16_interlaced.png",
                           "rgb8_interlaced.png", "rgba16_interlaced.png", "palette2_interlaced.png"})
    check(name);
}

TEST_F(PngFiles, GrayAlphaRgbRgba) {
  for (const char* name : {"graya8.png", "graya16.png", "rgb8.png", "rgb16.png", "rgba8.png"}) check(name);
}

TEST_F(PngFiles, PaletteExpandsToRgbOrRgba) {
  for (const char* name : {"palette8.png", "palette4_alpha.png", "palette2_interlaced.png"}) check(name);
}

TEST_F(PngFiles, WritersRoundTripThroughPypng) {
  struct Case {
    const char* name;
    int64_t c;
    int bits;
  };
  for (const Case& k : {Case{"mask8.png", 1, 8}, Case{"mask16.png", 1, 16}, Case{"overlay.png", 3, 8},
                        Case{"graya.png", 2, 16}, Case{"rgba.png", 4, 8}}) {
    SCOPED_TRACE(k.name);
    Volume v = slice(k.c, 6, 9, {});
    const double top = k.bits == 8 ? 255 : 65535;
    for (int64_t i = 0; i < v.count(); ++i) v.voxels.push_back(float(std::fmod(i * 7919.0, top + 1)));
    v.voxels[0] = float(top);
    const std::string path = dir_ + "/" + k.name;
    write_png(path, v, k.bits);
    const Volume back = read_image(path);
    EXPECT_EQ(back.voxels, v.voxels);
    EXPECT_EQ(back.c, k.c);
    EXPECT_EQ(back.full_scale, top);
    const json got = pypng_view(path);
    EXPECT_EQ(got["bitdepth"], k.bits);
    EXPECT_EQ(got["channels"], k.c);
    EXPECT_EQ(got["greyscale"], k.c <= 2);
    EXPECT_EQ(got["alpha"], k.c == 2 || k.c == 4);
    EXPECT_EQ(got["values"].get<std::vector<float>>(), v.voxels);
  }
}

// --- without python ---------------------------------------------------------

class PngLocal : public test::BrokenFiles {
 protected:
  void SetUp() override {
    make_dir("png_local");
    Volume v = slice(1, 16, 16, {});
    for (int i = 0; i < 256; ++i) v.voxels.push_back(float(i));
    write_png(dir_ + "/good.png", v, 8);
    good_ = slurp(dir_ + "/good.png");
    ASSERT_GT(good_.size(), 60u);
  }
  // good.png with IHDR's width and height replaced, CRC recomputed.
  std::string with_size(const std::string& name, uint32_t w, uint32_t h) {
    std::string b = good_;
    for (int i = 0; i < 4; ++i) {
      b[16 + i] = char(w >> (24 - 8 * i));
      b[20 + i] = char(h >> (24 - 8 * i));
    }
    const uint32_t crc = uint32_t(crc32(0, reinterpret_cast<const Bytef*>(&b[12]), 17));
    for (int i = 0; i < 4; ++i) b[29 + i] = char(crc >> (24 - 8 * i));
    return write(name, b);
  }
};

TEST_F(PngLocal, WriterRoundsAndClamps) {
  write_png(dir_ + "/clamp.png", slice(1, 1, 6, {-3, 0.4f, 0.6f, 254.5f, 300, NAN}), 8);
  EXPECT_EQ(read_image(dir_ + "/clamp.png").voxels, (std::vector<float>{0, 0, 1, 254, 255, 0}));
  write_png(dir_ + "/clamp16.png", slice(1, 1, 3, {-1, 1000.5f, 70000}), 16);
  EXPECT_EQ(read_image(dir_ + "/clamp16.png").voxels, (std::vector<float>{0, 1000, 65535}));
}

TEST_F(PngLocal, WriterRefusesAndLeavesNothing) {
  Volume deep = slice(1, 2, 2, std::vector<float>(8, 1));
  deep.d = 2;
  EXPECT_THROW(write_png(dir_ + "/deep.png", deep, 8), std::invalid_argument);
  EXPECT_THROW(write_png(dir_ + "/five.png", slice(5, 1, 1, std::vector<float>(5, 1)), 8), std::invalid_argument);
  EXPECT_THROW(write_png(dir_ + "/four_bits.png", slice(1, 1, 1, {1}), 4), std::invalid_argument);
  EXPECT_THROW(write_png(dir_ + "/no/such/folder/x.png", slice(1, 1, 1, {1}), 8), FileError);
  write_png(dir_ + "/good.png", slice(1, 1, 2, {7, 9}), 8);  // replaces, atomically
  EXPECT_EQ(read_image(dir_ + "/good.png").voxels, (std::vector<float>{7, 9}));
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"good.png"}) << "a refused write or a temporary file was left";
}

TEST_F(PngLocal, Truncated) {
  expect_error(write("half.png", good_.substr(0, good_.size() / 2)), "corrupt PNG");
  expect_error(write("no_iend.png", good_.substr(0, good_.size() - 12)), "corrupt PNG data");
  expect_error(write("header_only.png", good_.substr(0, 20)), "corrupt PNG header");
  expect_error(write("empty.png", ""), "empty file");
}

TEST_F(PngLocal, BadCrc) {
  std::string ihdr = good_;
  ihdr[24] ^= 1;  // bit depth byte of IHDR, CRC left stale
  expect_error(write("ihdr_crc.png", ihdr), "CRC error");
  std::string idat = good_;
  const size_t at = idat.find("IDAT");
  ASSERT_NE(at, std::string::npos);
  idat[at + 8] ^= 0x40;  // zlib notices before the chunk's CRC is checked
  expect_error(write("idat_crc.png", idat), "corrupt PNG data");
}

TEST_F(PngLocal, WrongSignature) {
  std::string b = good_;
  b[1] = 'Q';
  expect_error(write("signature.png", b), "bad signature");
  expect_error(write("text.png", "hello, not an image"), "bad signature");
}

TEST_F(PngLocal, ZeroOrAbsurdSize) {
  expect_error(with_size("zero.png", 0, 16), "width is zero");
  expect_error(with_size("huge.png", 1u << 30, 1u << 30), "exceeds");
  expect_error(with_size("big.png", 1u << 20, 1u << 20), "exceed the limit");
}

TEST_F(PngLocal, DirectoryAndMissingFile) {
  fs::create_directories(dir_ + "/folder.png");
  expect_error(dir_ + "/folder.png", "is a directory");
  expect_error(dir_ + "/missing.png", "cannot open: No such file");
}

TEST(PngIsbi, SlicesAre512x512Uint8) {
  for (const std::string sub : {"image/0.png", "label/0.png", "image/24.png"}) {
    const std::string path = kIsbi + sub;
    if (!fs::exists(path)) GTEST_SKIP() << path << " absent (../shared/datasets not mounted)";
    const Volume v = read_image(path);
    EXPECT_EQ(v.w, 512);
    EXPECT_EQ(v.h, 512);
    EXPECT_EQ(v.c, 1);
    EXPECT_EQ(v.dims, 2);
    EXPECT_EQ(v.datatype, "uint8");
    EXPECT_EQ(v.full_scale, 255);
    if (sub.rfind("label", 0) == 0) {
      for (float x : v.voxels) ASSERT_TRUE(x == 0 || x == 255) << x;
    }
  }
}

}  // namespace
}  // namespace unet
