// The files of tests that run the binary: a fresh working folder, a path
// quoted for the shell; and what they read back from the files a run leaves: a
// file's bytes, a text file's line count, every weight of a weights file.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "engine/storage/safetensors.h"

namespace unet::test {

// An empty folder `name` under the test temporary folder, in one of this
// process and `suite` ("unet_<suite>_<pid>/name").
inline std::filesystem::path work_dir(const std::string& suite, const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path d = fs::temp_directory_path() / ("unet_" + suite + "_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A path in single quotes, for a shell command line.
inline std::string q(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

inline std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// 0 while the file does not exist yet.
inline int lines_in(const std::string& path) {
  std::ifstream f(path);
  int n = 0;
  for (std::string l; std::getline(f, l);) ++n;
  return n;
}

// Every value of every tensor of a weights file, in file order.
inline std::vector<float> all_weights(const std::string& path) {
  std::vector<float> out;
  for (const NamedTensor& t : read_safetensors(path).tensors) out.insert(out.end(), t.values.begin(), t.values.end());
  return out;
}

}  // namespace unet::test
