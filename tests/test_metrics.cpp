#include "kernels/metrics.h"

#include <gtest/gtest.h>

#include <cmath>

namespace unet {
namespace {

// Three classes, six voxels; channel planes of the logits give argmax
// predictions (0, 1, 2, 2, 1, 0) against labels (0, 1, 1, 2, 2, 9 = ignored).
TEST(Metrics, SoftmaxConfusionDiceIouByHand) {
  const Shape s = shape2d(1, 3, 1, 6);
  std::vector<float> z{5, 0, 0, 0, 0, 5,   // class 0
                       0, 5, 0, 0, 5, 0,   // class 1
                       0, 0, 5, 5, 0, 0};  // class 2
  const std::vector<int32_t> g{0, 1, 1, 2, 2, 9};
  Confusion c(3);
  confusion_accumulate(Tensor(z.data(), s), g.data(), Head::softmax, 9, c);
  EXPECT_EQ(c.tp, (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(c.fp, (std::vector<int64_t>{0, 1, 1}));
  EXPECT_EQ(c.fn, (std::vector<int64_t>{0, 1, 1}));
  EXPECT_DOUBLE_EQ(dice(c, 0), 1.0);
  EXPECT_DOUBLE_EQ(dice(c, 1), 0.5);
  EXPECT_DOUBLE_EQ(iou(c, 2), 1.0 / 3.0);
  // Counts accumulate across calls (validation over many batches).
  confusion_accumulate(Tensor(z.data(), s), g.data(), Head::softmax, 9, c);
  EXPECT_EQ(c.tp, (std::vector<int64_t>{2, 2, 2}));
}

TEST(Metrics, SigmoidThresholdAtZeroLogit) {
  const Shape s = shape3d(2, 1, 1, 1, 2);
  std::vector<float> z{1.f, -1.f, 0.5f, 0.f};  // predicted 1, 0, 1, 0
  const std::vector<int32_t> g{1, 1, 0, 0};
  Confusion c(head_classes(Head::sigmoid, s));
  confusion_accumulate(Tensor(z.data(), s), g.data(), Head::sigmoid, -1, c);
  EXPECT_EQ(c.tp[1], 1);
  EXPECT_EQ(c.fp[1], 1);
  EXPECT_EQ(c.fn[1], 1);
  EXPECT_DOUBLE_EQ(dice(c, 1), 0.5);
  EXPECT_DOUBLE_EQ(iou(c, 0), 1.0 / 3.0);
}

TEST(Metrics, AbsentClassScoresNaN) {
  Confusion c(2);
  c.tp[0] = 3;
  EXPECT_TRUE(std::isnan(dice(c, 1)));
  EXPECT_TRUE(std::isnan(iou(c, 1)));
  EXPECT_DOUBLE_EQ(dice(c, 0), 1.0);
}

TEST(Metrics, LabelOutsideClassesIsAnError) {
  std::vector<float> z{0, 0};
  const std::vector<int32_t> g{0, 3};
  Confusion c(2);
  EXPECT_THROW(confusion_accumulate(Tensor(z.data(), shape2d(1, 1, 1, 2)), g.data(), Head::sigmoid, -1, c),
               std::invalid_argument);
  Confusion wrong(3);
  EXPECT_THROW(confusion_accumulate(Tensor(z.data(), shape2d(1, 1, 1, 2)), g.data(), Head::sigmoid, 3, wrong),
               std::invalid_argument);
}

}  // namespace
}  // namespace unet
