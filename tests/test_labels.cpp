#include "io/data/labels.h"

#include <gtest/gtest.h>

namespace unet {
namespace {

Volume label(std::vector<float> v, double full_scale = 255, std::string path = "dir/mask.png") {
  Volume l;
  l.w = static_cast<int64_t>(v.size());
  l.voxels = std::move(v);
  l.full_scale = full_scale;
  l.path = std::move(path);
  return l;
}

std::string message(const Volume& v, const LabelSpec& spec) {
  try {
    to_classes(v, spec);
  } catch (const FileError& e) {
    return e.what();
  }
  return "no error";
}

TEST(Labels, IntegersPassThrough) {
  LabelSpec spec;
  spec.classes = 3;
  EXPECT_EQ(to_classes(label({0, 1, 2, 1, 0}), spec), (std::vector<int32_t>{0, 1, 2, 1, 0}));
}

TEST(Labels, DefaultThresholdRule) {
  EXPECT_EQ(default_threshold(label({0, 255, 0})), 127.5);                // 8-bit
  EXPECT_EQ(default_threshold(label({0, 1, 0})), 0.5);                    // 0/1 masks
  EXPECT_EQ(default_threshold(label({0, 60000}, 65535)), 32767.5);        // 16-bit
  EXPECT_EQ(default_threshold(label({-115.2f, 345.1f, 255}, 0)), 127.5);  // lung float masks
  EXPECT_EQ(default_threshold(label({0, 0.7f}, 0)), 0.5);                 // float probabilities
}

// The cluster modules' "object class": one stored value is the object, the rest background.
TEST(Labels, ObjectValue) {
  LabelSpec spec;
  spec.object_value = 0;  // ISBI: membrane is stored as 0
  EXPECT_EQ(to_classes(label({0, 255, 0, 255}), spec), (std::vector<int32_t>{1, 0, 1, 0}));
  spec.object_value = 2;
  EXPECT_EQ(to_classes(label({0, 1, 2, 3}), spec), (std::vector<int32_t>{0, 0, 1, 0}));
}

TEST(Labels, Threshold) {
  LabelSpec spec;
  spec.binarize = true;
  EXPECT_EQ(to_classes(label({-115.2f, 0, 127.4f, 127.6f, 255, 345.1f}, 0), spec),
            (std::vector<int32_t>{0, 0, 0, 1, 1, 1}));
  spec.threshold = 10;
  EXPECT_EQ(to_classes(label({9, 10, 11}), spec), (std::vector<int32_t>{0, 0, 1}));
}

TEST(Labels, MapIsbiMembraneAsForeground) {
  LabelSpec spec;
  spec.map = parse_label_map("0:1,255:0");
  EXPECT_EQ(to_classes(label({0, 255, 255, 0}), spec), (std::vector<int32_t>{1, 0, 0, 1}));
  // The same through the threshold: binarized values 0 (membrane) and 1.
  LabelSpec t;
  t.binarize = true;
  t.map = parse_label_map("0:1,1:0");
  EXPECT_EQ(to_classes(label({0, 3, 250, 255}), t), (std::vector<int32_t>{1, 1, 0, 0}));
}

TEST(Labels, MapMissingValueIsAnError) {
  LabelSpec spec;
  spec.map = parse_label_map("0:0,255:1");
  const std::string m = message(label({0, 128, 255}), spec);
  EXPECT_NE(m.find("mask.png"), std::string::npos) << m;
  EXPECT_NE(m.find("128"), std::string::npos) << m;
  EXPECT_NE(m.find("--label-map"), std::string::npos) << m;
}

TEST(Labels, NonIntegerDetection) {
  LabelSpec spec;
  const std::string m =
      message(label({-115.2f, 0, 17.25f, 255, 345.1f}, 0, "/data/lung/id001-128x128x64-msk.nii.gz"), spec);
  EXPECT_EQ(m,
            "id001-128x128x64-msk.nii.gz holds non-integer values (-115.2 .. 345.1); these look like "
            "interpolated masks: pass a threshold (--label-threshold 127.5)");
  spec.binarize = true;  // the option that handles it
  EXPECT_EQ(to_classes(label({-115.2f, 0, 17.25f, 255, 345.1f}, 0), spec), (std::vector<int32_t>{0, 0, 0, 1, 1}));
}

TEST(Labels, OutOfRangeIsAnError) {
  LabelSpec spec;  // 2 classes
  const std::string m = message(label({0, 1, 255}), spec);
  EXPECT_NE(m.find("mask.png"), std::string::npos) << m;
  EXPECT_NE(m.find("255"), std::string::npos) << m;
  EXPECT_NE(m.find("outside the 2 classes"), std::string::npos) << m;
  EXPECT_NE(message(label({0, -1}), spec).find("class -1"), std::string::npos);
  spec.ignore_label = 255;  // an ignore value is allowed
  EXPECT_EQ(to_classes(label({0, 1, 255}), spec), (std::vector<int32_t>{0, 1, 255}));
  spec.map = {{0, 0}, {1, 5}};
  EXPECT_NE(message(label({0, 1}), spec).find("class 5"), std::string::npos);
}

TEST(Labels, NonFiniteAndChannels) {
  LabelSpec spec;
  EXPECT_NE(message(label({0, std::numeric_limits<float>::quiet_NaN()}), spec).find("nan"), std::string::npos);
  Volume two = label({0, 1, 0, 1});
  two.c = 2, two.w = 2;
  EXPECT_NE(message(two, spec).find("one channel"), std::string::npos);
}

TEST(Labels, ParseMap) {
  const auto m = parse_label_map("0:1,255:0,-1:2,0.5:3");
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[2], (std::pair<double, int32_t>{-1, 2}));
  EXPECT_EQ(m[3], (std::pair<double, int32_t>{0.5, 3}));
  EXPECT_THROW(parse_label_map(""), std::invalid_argument);
  EXPECT_THROW(parse_label_map("0-1"), std::invalid_argument);
  EXPECT_THROW(parse_label_map("a:1"), std::invalid_argument);
  EXPECT_THROW(parse_label_map("0:1x"), std::invalid_argument);
}

}  // namespace
}  // namespace unet
