#include "engine/storage/checkpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace unet {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

fs::path temp_dir() {
  const fs::path d = fs::path(::testing::TempDir()) / ("unet_ckpt_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

UNetConfig small_config() {
  UNetConfig c;
  c.dims = 3;
  c.depth = 2;
  c.start_filters = 4;
  c.norm = NormChoice::batch;
  c.classes = 3;
  c.head = Head::softmax;
  c.dropout = 0.25f;
  c.seed = 11;
  return c;
}

TEST(Checkpoint, WeightsRoundTripWithConfigAndMetadata) {
  UNet a(small_config());
  for (size_t i = 0; i < a.state().size(); ++i) a.state()[i] = float(i) * 0.5f;
  const std::string path = (temp_dir() / "w.safetensors").string();
  save_weights(path, a, {{"unet.normalization", "{\"kind\":\"zscore\"}"}});
  const Safetensors f = read_safetensors(path);
  EXPECT_EQ(f.metadata.at("unet.normalization"), "{\"kind\":\"zscore\"}");
  const UNetConfig c = stored_config(f, path);
  EXPECT_EQ(config_to_json(c), config_to_json(small_config()));
  UNetConfig other = c;
  other.seed = 99;  // different initial weights, same shapes
  UNet b(other);
  load_weights(b, f, path);
  EXPECT_TRUE(std::equal(a.params(), a.params() + a.parameter_count(), b.params()));
  EXPECT_EQ(a.state(), b.state());
  EXPECT_NE(f.find("enc0.conv0.norm.running_var"), nullptr);
}

// A model's pooling windows and filter cap ride in its configuration; files
// without them read as isotropic and uncapped, a malformed one is named.
TEST(Checkpoint, PoolingAndFilterCapRoundTrip) {
  UNetConfig c = small_config();
  c.pooling = {{1, 2, 2}, {2, 2, 2}};
  c.max_filters = 6;
  const std::string json = config_to_json(c);
  EXPECT_THAT(json, HasSubstr("\"pooling\":\"2x2x1,2x2x2\""));
  EXPECT_EQ(config_to_json(config_from_json(json, "w.safetensors")), json);
  EXPECT_TRUE(config_from_json(config_to_json(small_config()), "w.safetensors").pooling.empty());
  std::string broken = json;
  broken.replace(broken.find("2x2x1,2x2x2"), 11, "2x2x1,2x2x3");
  try {
    config_from_json(broken, "w.safetensors");
    FAIL() << "no error";
  } catch (const FileError& e) {
    EXPECT_THAT(e.what(), HasSubstr("w.safetensors"));
    EXPECT_THAT(e.what(), HasSubstr("pooling"));
  }
}

// Deep supervision's heads train with the model and resume with it, but the
// weights for prediction carry only the full-resolution head; fine-tuning from
// those trains the heads anew.
TEST(Checkpoint, PredictionWeightsLeaveTheDeepSupervisionHeadsOut) {
  UNetConfig c = small_config();
  c.depth = 3;
  c.deep_supervision = true;
  UNet a(c);
  const Safetensors all = weights_of(a), prediction = weights_of(a, {}, WeightsFor::prediction);
  EXPECT_NE(all.find("ds1.weight"), nullptr);
  EXPECT_EQ(prediction.find("ds1.weight"), nullptr);
  EXPECT_EQ(prediction.tensors.size() + 2, all.tensors.size());
  const UNetConfig stored = stored_config(prediction, "best.safetensors");
  EXPECT_FALSE(stored.deep_supervision);
  UNet plain(stored);
  load_weights(plain, prediction, "best.safetensors");
  const int64_t ds = c.filters(1) * c.out_channels() + c.out_channels();  // ds1's weight and bias
  EXPECT_EQ(plain.parameter_count(), a.parameter_count() - ds);
  const ParamInfo &head = plain.param_table().back(), &ahead = a.param_table().back();
  EXPECT_EQ(head.name, "head.bias");
  EXPECT_TRUE(std::equal(plain.params() + head.offset, plain.params() + head.offset + head.count,
                         a.params() + ahead.offset));
  // A deep-supervised model from the prediction file: every tensor but ds1's
  // (its weight keeps this model's initialization; biases start at 0 in both).
  UNetConfig other = c;
  other.seed = 99;
  UNet again(other);
  load_weights(again, prediction, "best.safetensors");
  for (const ParamInfo& p : again.param_table()) {
    const bool same = std::equal(again.params() + p.offset, again.params() + p.offset + p.count, a.params() + p.offset);
    EXPECT_EQ(same, p.name != "ds1.weight") << p.name;
  }
}

// The layout is the published one: a second reader written from the spec (8-byte
// little-endian length, JSON, raw data) finds every tensor where the header says.
TEST(Checkpoint, FileLayoutFollowsTheSpec) {
  UNet a(small_config());
  const std::string path = (temp_dir() / "layout.safetensors").string();
  save_weights(path, a);
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);
  std::string json(n, '\0');
  in.read(json.data(), n);
  EXPECT_THAT(json, HasSubstr("\"head.weight\":{\"data_offsets\":["));
  EXPECT_THAT(json, HasSubstr("\"dtype\":\"F32\""));
  const ParamInfo& first = a.param_table().front();
  std::vector<float> v(first.count);
  // enc0.conv0.weight is the first tensor in the file: its data starts right after the header.
  in.read(reinterpret_cast<char*>(v.data()), first.count * 4);
  EXPECT_TRUE(std::equal(v.begin(), v.end(), a.params()));
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), bytes.size());
}

std::string read_error(const std::string& path) {
  try {
    read_safetensors(path);
  } catch (const FileError& e) {
    return e.what();
  }
  return "no error";
}

TEST(Checkpoint, BrokenFilesAreNamedErrors) {
  UNet a(small_config());
  const fs::path dir = temp_dir();
  const std::string good = (dir / "good.safetensors").string();
  save_weights(good, a);
  std::ifstream in(good, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});

  const std::string truncated = (dir / "truncated.safetensors").string();
  write_bytes(truncated, bytes.substr(0, bytes.size() - 100));
  EXPECT_THAT(read_error(truncated), HasSubstr("truncated.safetensors: tensor "));

  const std::string tiny = (dir / "tiny.safetensors").string();
  write_bytes(tiny, "abc");
  EXPECT_THAT(read_error(tiny), HasSubstr("too short"));

  const std::string png = (dir / "notsafetensors.safetensors").string();
  write_bytes(png, std::string("\x89PNG\r\n\x1a\n", 8) + std::string(64, 'x'));
  EXPECT_THAT(read_error(png), HasSubstr("header length"));

  std::string badjson = bytes;
  badjson[8] = '[';
  badjson[9] = '{';
  const std::string bj = (dir / "badjson.safetensors").string();
  write_bytes(bj, badjson);
  EXPECT_THAT(read_error(bj), HasSubstr("not valid JSON"));

  EXPECT_THAT(read_error((dir / "missing.safetensors").string()), HasSubstr("cannot open"));

  // A file of another model: a shape that differs is named.
  UNetConfig bigger = small_config();
  bigger.start_filters = 8;
  UNet b(bigger);
  try {
    load_weights(b, read_safetensors(good), good);
    FAIL() << "no error";
  } catch (const FileError& e) {
    EXPECT_THAT(e.what(), HasSubstr("enc0.conv0.weight has shape 4x1x3x3x3, the model expects 8x1x3x3x3"));
  }
  // A file without our metadata.
  Safetensors plain;
  plain.tensors.push_back({"x", {2}, {1.f, 2.f}});
  const std::string p = (dir / "plain.safetensors").string();
  write_safetensors(p, plain);
  EXPECT_THROW(stored_config(read_safetensors(p), p), FileError);
}

TEST(Checkpoint, FailedWriteLeavesTheOldFile) {
  UNet a(small_config());
  const fs::path dir = temp_dir() / "ro";
  fs::create_directories(dir);
  const std::string path = (dir / "w.safetensors").string();
  save_weights(path, a);
  const auto before = fs::file_size(path);
  EXPECT_THROW(save_weights((dir / "no/such/folder/w.safetensors").string(), a), FileError);
  EXPECT_EQ(fs::file_size(path), before);
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_THAT(e.path().string(), ::testing::Not(HasSubstr(".tmp")));
}

}  // namespace
}  // namespace unet
