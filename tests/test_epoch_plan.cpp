// The epoch plan and the head's predicted classes: the pure parts of a
// training run, without training.
#include "engine/train/epoch_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "kernels/head.h"

namespace unet {
namespace {

using ::testing::HasSubstr;

Shape batch_of(int64_t n) { return {n, 1, 1, 8, 8, 2}; }

// Two ranks' samples, interleaved batch by batch, are the one-rank run's with
// the same global batch: the data-parallel run sees the single-process run's data.
TEST(EpochPlan, RanksSliceTheSingleProcessOrder) {
  const EpochPlan one = make_epoch_plan(20, batch_of(4), 1, 1), two = make_epoch_plan(20, batch_of(4), 2, 1);
  ASSERT_EQ(one.steps_per_epoch(), 5);
  ASSERT_EQ(two.steps_per_epoch(), 5);
  const std::vector<int64_t> all = one.rank_samples(9, 0, 0), r0 = two.rank_samples(9, 0, 0),
                             r1 = two.rank_samples(9, 0, 1);
  ASSERT_EQ(all.size(), 20u);
  ASSERT_EQ(r0.size(), 10u);
  for (size_t b = 0; b < 5; ++b)
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(r0[b * 2 + i], all[b * 4 + i]);
      EXPECT_EQ(r1[b * 2 + i], all[b * 4 + 2 + i]);
    }
  EXPECT_EQ(std::set<int64_t>(all.begin(), all.end()).size(), 20u) << "each sample once per epoch";
}

TEST(EpochPlan, ResumingMidEpochSkipsTheStepsDoneAndEpochsReshuffle) {
  const EpochPlan p = make_epoch_plan(24, batch_of(2), 1, 2);  // 4 samples a step, 6 steps an epoch
  const std::vector<int64_t> whole = p.rank_samples(3, 0, 0), from_step2 = p.rank_samples(3, 2, 0);
  ASSERT_EQ(from_step2.size(), whole.size() - 8);
  EXPECT_TRUE(std::equal(from_step2.begin(), from_step2.end(), whole.begin() + 8));
  EXPECT_EQ(p.epoch_of(6), 1);
  EXPECT_NE(p.rank_samples(3, 6, 0), whole) << "epoch 1 has its own order";
}

TEST(EpochPlan, RefusesWhatCannotBePlanned) {
  EXPECT_THAT([] { per_rank_batch(batch_of(3), 2); },
              ::testing::ThrowsMessage<std::invalid_argument>(HasSubstr("does not divide over 2 ranks")));
  EXPECT_THAT([] { make_epoch_plan(3, batch_of(4), 2, 1); },
              ::testing::ThrowsMessage<std::invalid_argument>(HasSubstr("too few for batches of 4")));
  EXPECT_THROW(make_epoch_plan(100, batch_of(4), 1, 0), std::invalid_argument);
}

TEST(Head, PredictedClassesAndProbabilities) {
  EXPECT_EQ(head_channels(Head::sigmoid, 2), 1);
  EXPECT_EQ(head_channels(Head::softmax, 3), 3);
  const float sig[3] = {-1.f, 0.f, 2.f};
  int32_t c[3];
  float p[3];
  predict_classes(sig, Head::sigmoid, 2, 3, c, p);
  EXPECT_EQ(std::vector<int32_t>(c, c + 3), (std::vector<int32_t>{0, 0, 1})) << "0 is not above 0";
  EXPECT_FLOAT_EQ(p[1], 0.5f);
  // Two voxels, three classes, channel-major: voxel 1 ties classes 1 and 2.
  const float soft[6] = {0.f, 0.f, 1.f, 3.f, 0.5f, 3.f};
  float q[6];
  predict_classes(soft, Head::softmax, 3, 2, c, q);
  EXPECT_EQ(c[0], 1);
  EXPECT_EQ(c[1], 1) << "the first of equal logits";
  EXPECT_NEAR(q[0] + q[2] + q[4], 1.0, 1e-6);
  EXPECT_NEAR(q[3] / q[5], 1.0, 1e-6);
}

}  // namespace
}  // namespace unet
