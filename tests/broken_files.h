// Damaged files made from a good one: a fixture with a fresh folder, a writer of
// raw bytes, and the check every reader must pass: a FileError that names the
// file and says what is wrong.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "io/image_file.h"

namespace unet::test {

class BrokenFiles : public ::testing::Test {
 protected:
  // `tag` names the folder; derived fixtures write good_ in their SetUp.
  void make_dir(const std::string& tag) {
    dir_ = ::testing::TempDir() + "unet_test_" + tag + "_" + std::to_string(::getpid());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& bytes) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  static void expect_error(const std::string& path, const std::string& what) {
    try {
      read_image(path);
      FAIL() << path << " was accepted";
    } catch (const FileError& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr(std::filesystem::path(path).filename().string()));
      EXPECT_THAT(e.what(), ::testing::HasSubstr(what));
    }
  }
  std::string dir_, good_;
};

}  // namespace unet::test
