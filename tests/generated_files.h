// Test files written by another tool: a python script from tests/data run once
// per test suite into a temporary folder, writing the files and expected.json,
// what that tool reads back. Where python3 (UNET_TEST_PYTHON) or a module it
// needs is missing, `skip` says so and the suite skips with that message.
// The including test defines UNET_TEST_PYTHON and UNET_SOURCE_DIR (CMake does).
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include <gtest/gtest.h>

#include "tests/files.h"

namespace unet::test {

inline std::string quote(const std::string& s) { return "'" + s + "'"; }

inline nlohmann::json load_json(const std::string& path) {
  std::ifstream f(path);
  return nlohmann::json::parse(f);
}

// Empty when python3 runs and imports `modules` ("nibabel, numpy"), else why not.
inline std::string python_missing(const std::string& modules, const std::string& install_hint) {
  const std::string python = UNET_TEST_PYTHON;
  if (python.empty() || python.find("NOTFOUND") != std::string::npos || !std::filesystem::exists(python))
    return "python3 not found (UNET_TEST_PYTHON='" + python + "'); run tools/setup.sh";
  if (std::system((quote(python) + " -c 'import " + modules + "' 2>/dev/null").c_str()) != 0)
    return python + " lacks " + modules + " (" + install_hint + ")";
  return "";
}

struct GeneratedFiles {
  std::string dir;              // where the script wrote
  std::string skip;             // why the suite cannot run, or empty
  nlohmann::json expected;
};

// Runs tests/data/<script> into a fresh folder named after `tag`.
inline GeneratedFiles generate(const std::string& tag, const std::string& script, const std::string& modules,
                               const std::string& install_hint) {
  GeneratedFiles g;
  const std::string root = ::testing::TempDir() + "unet_test_" + tag + "_" + std::to_string(::getpid());
  std::filesystem::create_directories(root);
  g.dir = root + "/out";
  g.skip = python_missing(modules, install_hint);
  if (!g.skip.empty()) return g;
  const std::string cmd = quote(UNET_TEST_PYTHON) + " " + quote(std::string(UNET_SOURCE_DIR) + "/tests/data/" + script) +
                          " " + quote(g.dir);
  if (std::system(cmd.c_str()) != 0) {
    g.skip = "the generator failed: " + cmd;
    return g;
  }
  g.expected = load_json(g.dir + "/expected.json");
  return g;
}

// A test suite over generated files: `Suite` names its tag, script, modules and
// install hint; dir_ holds the folder (the script wrote into dir_/out), skip_ why
// not, expected_ the JSON. Every test skips with the reason when skip_ is set.
template <class Suite>
class GeneratedFilesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const GeneratedFiles g = generate(Suite::kTag, Suite::kGenerator, Suite::kModules, Suite::kInstall);
    dir_ = std::filesystem::path(g.dir).parent_path().string();
    skip_ = g.skip;
    expected_ = g.expected;
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
  }
  static inline std::string dir_, skip_;
  static inline nlohmann::json expected_;
};

}  // namespace unet::test
