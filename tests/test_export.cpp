// Models that travel. For U-Nets of every kind (2D and 3D, "same" and "valid",
// no norm, batch norm with running statistics, instance norm, ReLU and
// LeakyReLU, sigmoid and softmax heads, anisotropic pooling, capped filters)
// with every parameter randomized:
//   - `unet export --onnx` writes a graph that onnxruntime runs to our CPU
//     forward's logits and probabilities (tests/data/check_onnx.py), at a
//     second input size too where the graph's dimensions are named;
//   - the PyTorch baseline (bench/baselines/unet_torch.py) loads our weights
//     file as it is and computes the same logits (check_torch.py; skipped,
//     visibly, where UNET_TORCH_PYTHON has no PyTorch);
//   - Python's safetensors reads our weights file, and what it writes back we
//     read as the same weights (roundtrip_safetensors.py).
// And the export's bad input: a file that is no weights file, --size where none
// is taken, a size a "valid" U-Net cannot take, a folder that does not exist.
#include <filesystem>
#include <random>

#include <gtest/gtest.h>

#include "engine/storage/checkpoint.h"
#include "tests/generated_files.h"
#include "tests/run_binary.h"

namespace unet {
namespace {

namespace fs = std::filesystem;
using test::quote;
using test::Result;

constexpr double kTolerance = 1e-4;  // the bar: max abs diff on the CPU

struct ExportCase {
  std::string name;
  UNetConfig config;
  std::vector<int64_t> size, size2;  // W x H[ x D]; size2: a second size ("same" only)
  int batch = 1;
};

void PrintTo(const ExportCase& c, std::ostream* os) { *os << c.name; }  // names, not bytes, in ctest's list

std::vector<ExportCase> cases() {
  std::vector<ExportCase> out;
  UNetConfig c;
  c.depth = 2, c.start_filters = 4, c.in_channels = 2, c.norm = NormChoice::batch, c.seed = 1;
  out.push_back({"2d_same_batchnorm_sigmoid", c, {16, 12}, {24, 8}, 2});
  c = UNetConfig{};
  c.depth = 2, c.start_filters = 3, c.padding = Padding::valid, c.norm = NormChoice::instance, c.classes = 3;
  c.head = Head::softmax, c.activation = {Activation::leaky_relu, 0.1f}, c.seed = 2;
  out.push_back({"2d_valid_instancenorm_softmax", c, {44, 48}, {}, 2});
  c = UNetConfig{};
  c.depth = 3, c.start_filters = 4, c.kernel = 5, c.seed = 3;
  out.push_back({"2d_same_k5_nonorm", c, {32, 16}, {16, 8}, 1});
  c = UNetConfig{};
  c.dims = 3, c.depth = 2, c.start_filters = 2, c.norm = NormChoice::instance, c.seed = 4;
  out.push_back({"3d_same_instancenorm_sigmoid", c, {8, 8, 8}, {16, 8, 4}, 1});
  c = UNetConfig{};
  c.dims = 3, c.depth = 1, c.start_filters = 3, c.norm = NormChoice::batch, c.classes = 2, c.head = Head::softmax;
  c.activation = {Activation::leaky_relu, 0.2f}, c.dropout = 0.3f, c.seed = 5;
  out.push_back({"3d_same_batchnorm_softmax_dropout", c, {6, 4, 4}, {}, 2});
  c = UNetConfig{};
  c.dims = 3, c.depth = 1, c.start_filters = 2, c.padding = Padding::valid, c.seed = 6;
  out.push_back({"3d_valid_nonorm", c, {18, 18, 20}, {}, 1});
  c = UNetConfig{};
  c.dims = 3, c.depth = 2, c.start_filters = 2, c.norm = NormChoice::instance, c.seed = 7;
  c.pooling = {{1, 2, 2}, {2, 2, 2}}, c.max_filters = 3;  // thick slices; a cap on the filters
  out.push_back({"3d_anisotropic_capped", c, {8, 12, 2}, {16, 8, 4}, 1});
  return out;
}

Shape input_shape(const UNetConfig& c, const std::vector<int64_t>& s, int batch) {
  return s.size() == 2 ? shape2d(batch, c.in_channels, s[1], s[0]) : shape3d(batch, c.in_channels, s[2], s[1], s[0]);
}

std::string size_text(const std::vector<int64_t>& s) {
  std::string t;
  for (int64_t v : s) t += (t.empty() ? "" : "x") + std::to_string(v);
  return t;
}

std::vector<int64_t> dims_of(const Shape& s) {
  return s.dims == 2 ? std::vector<int64_t>{s.n, s.c, s.h, s.w} : std::vector<int64_t>{s.n, s.c, s.d, s.h, s.w};
}

// Runs a python check; 77 is its "a module is missing" (the test then skips).
Result run_python(const std::string& python, const std::string& script, const std::string& args) {
  return test::run_shell(quote(python) + " " + quote(std::string(UNET_SOURCE_DIR) + "/tests/data/" + script) + " " + args);
}

class ExportTest : public ::testing::TestWithParam<ExportCase> {
 protected:
  void SetUp() override {
    const ExportCase& k = GetParam();
    dir_ = ::testing::TempDir() + "unet_export_" + k.name + "_" + std::to_string(::getpid());
    fs::create_directories(dir_);
    UNet model(k.config);
    // Every parameter and running statistic away from its initial value, so
    // that a bias, a norm scale or a statistic the exporter dropped shows.
    // Weights move by 10% of themselves: the He scale, and logits of order 1
    // that an absolute tolerance means something for, are kept.
    std::mt19937 rng(7);
    std::normal_distribution<float> noise(0.f, 0.1f);
    std::uniform_real_distribution<float> positive(0.5f, 1.5f);
    for (const ParamInfo& p : model.param_table()) {
      const bool conv_weight = p.name.find(".norm.") == std::string::npos && p.name.size() > 7 &&
                               p.name.compare(p.name.size() - 7, 7, ".weight") == 0;
      for (int64_t i = 0; i < p.count; ++i) {
        float& v = model.params()[p.offset + i];
        v = conv_weight ? v * (1 + noise(rng)) : v + noise(rng);
      }
    }
    for (const UNet::Layer& L : model.layers())
      for (int64_t i = 0; L.running >= 0 && i < L.co; ++i) {
        model.state()[L.running + i] = noise(rng);            // running mean
        model.state()[L.running + L.co + i] = positive(rng);  // running variance
      }
    save_weights(weights(), model, {{"unet.patch", size_text(k.size)}});

    Safetensors io;
    for (const auto& [suffix, size] : {std::pair{std::string(), k.size}, std::pair{std::string("2"), k.size2}}) {
      if (size.empty()) continue;
      const Shape in = input_shape(k.config, size, k.batch);
      std::vector<float> x(static_cast<size_t>(in.count()));
      for (float& v : x) v = noise(rng) * 10;  // unit variance, as normalized images are
      model.plan(in);
      const Tensor logits = model.forward(Tensor(x.data(), in), false);
      io.tensors.push_back({"image" + suffix, dims_of(in), x});
      io.tensors.push_back({"logits" + suffix, dims_of(logits.shape),
                            std::vector<float>(logits.data, logits.data + logits.shape.count())});
    }
    write_safetensors(io_path(), io);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string weights() const { return dir_ + "/model.safetensors"; }
  std::string io_path() const { return dir_ + "/io.safetensors"; }
  std::string onnx() const { return dir_ + "/model.onnx"; }

  std::string dir_;
};

TEST_P(ExportTest, OnnxRuntimeMatchesTheCpuForward) {
  const Result e = test::run_unet("export --weights " + quote(weights()) + " --onnx " + quote(onnx()));
  ASSERT_EQ(e.status, 0) << e.out;
  EXPECT_NE(e.out.find("opset 17"), std::string::npos) << e.out;
  const Result r = run_python(UNET_TEST_PYTHON, "check_onnx.py",
                              quote(onnx()) + " " + quote(io_path()) + " " + std::to_string(kTolerance));
  if (r.status == 77) GTEST_SKIP() << r.out;
  EXPECT_EQ(r.status, 0) << r.out;
  std::printf("%s", r.out.c_str());
}

TEST_P(ExportTest, PyTorchBaselineLoadsTheWeightsAndMatches) {
  const Result r = run_python(UNET_TORCH_PYTHON, "check_torch.py",
                              quote(weights()) + " " + quote(io_path()) + " " + std::to_string(kTolerance));
  if (r.status == 77) GTEST_SKIP() << r.out;
  EXPECT_EQ(r.status, 0) << r.out;
  std::printf("%s", r.out.c_str());
}

TEST_P(ExportTest, PythonSafetensorsReadsAndWritesOurWeights) {
  const std::string copy = dir_ + "/copy.safetensors";
  const Result r = run_python(UNET_TEST_PYTHON, "roundtrip_safetensors.py", quote(weights()) + " " + quote(copy));
  if (r.status == 77) GTEST_SKIP() << r.out;
  ASSERT_EQ(r.status, 0) << r.out;
  const Safetensors ours = read_safetensors(weights()), theirs = read_safetensors(copy);
  EXPECT_EQ(theirs.metadata, ours.metadata);
  ASSERT_EQ(theirs.tensors.size(), ours.tensors.size());
  for (const NamedTensor& t : ours.tensors) {
    const NamedTensor* u = theirs.find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    EXPECT_EQ(u->shape, t.shape) << t.name;
    EXPECT_EQ(u->values, t.values) << t.name;
  }
  UNet model(stored_config(theirs, copy));
  load_weights(model, theirs, copy);  // throws on a missing tensor or a shape that differs
}

INSTANTIATE_TEST_SUITE_P(Models, ExportTest, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

class ExportErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "unet_export_errors_" + std::to_string(::getpid());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(ExportErrors, NotAWeightsFile) {
  const std::string bad = dir_ + "/notes.safetensors";
  std::ofstream(bad) << "these are not weights";
  const Result r = test::run_unet("export --weights " + quote(bad) + " --onnx " + quote(dir_ + "/m.onnx"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find(bad), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir_ + "/m.onnx"));
}

TEST_F(ExportErrors, SizeOnlyForValidUNetsAndOnlyOneThatPasses) {
  UNetConfig same;
  same.depth = 1, same.start_filters = 2;
  save_weights(dir_ + "/same.safetensors", UNet(same));
  Result r = test::run_unet("export -w " + quote(dir_ + "/same.safetensors") + " --onnx " + quote(dir_ + "/a.onnx") +
                            " --size 64x64");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("any size"), std::string::npos) << r.out;

  UNetConfig valid = same;
  valid.padding = Padding::valid;
  save_weights(dir_ + "/valid.safetensors", UNet(valid));  // no patch size stored
  r = test::run_unet("export -w " + quote(dir_ + "/valid.safetensors") + " --onnx " + quote(dir_ + "/b.onnx"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("pass --size"), std::string::npos) << r.out;
  r = test::run_unet("export -w " + quote(dir_ + "/valid.safetensors") + " --onnx " + quote(dir_ + "/b.onnx") +
                     " --size 15x16");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("nearest sizes that work"), std::string::npos) << r.out;
  r = test::run_unet("export -w " + quote(dir_ + "/valid.safetensors") + " --onnx " + quote(dir_ + "/no/such/b.onnx") +
                     " --size 18x18");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("no/such"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir_ + "/a.onnx") || fs::exists(dir_ + "/b.onnx"));
}

}  // namespace
}  // namespace unet
