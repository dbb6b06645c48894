#include "engine/train/loader.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <stdexcept>
#include <thread>

namespace unet {
namespace {

// A sample maker whose output depends only on (epoch, sample), and which sleeps
// a random while so that workers finish out of order.
MakeSample slow_maker(std::atomic<int>* live = nullptr, std::atomic<int>* peak = nullptr) {
  return [live, peak](int64_t epoch, int64_t sample, float* image, int32_t* label) {
    if (live) {
      const int now = ++*live;
      int p = peak->load();
      while (now > p && !peak->compare_exchange_weak(p, now)) {
      }
    }
    thread_local std::mt19937 rng(std::hash<std::thread::id>{}(std::this_thread::get_id()));
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
    for (int i = 0; i < 6; ++i) image[i] = float(epoch * 1000 + sample) + 0.1f * float(i);
    for (int i = 0; i < 3; ++i) label[i] = int32_t(sample % 2);
    if (live) --*live;
  };
}

const Shape kBatch = shape2d(4, 2, 1, 3);  // 4 samples of 2 channels x 3 voxels

std::vector<float> run_epoch(Loader& loader, int64_t epoch, const std::vector<int64_t>& order) {
  loader.start_epoch(epoch, order);
  std::vector<float> seen;
  int64_t expected = 0;
  while (const Batch* b = loader.next()) {
    EXPECT_EQ(b->index, expected++);
    seen.insert(seen.end(), b->image, b->image + b->shape.count());
    loader.release(b);
  }
  EXPECT_EQ(expected, loader.batches_in_epoch());
  return seen;
}

TEST(Loader, BatchesArriveInOrderWhateverTheWorkers) {
  std::vector<int64_t> order(40);
  for (int64_t i = 0; i < 40; ++i) order[i] = (i * 7) % 40;
  Loader one(kBatch, slow_maker(), 1, 2);
  Loader four(kBatch, slow_maker(), 4, 3);
  const auto a = run_epoch(one, 3, order), b = run_epoch(four, 3, order);
  ASSERT_EQ(a.size(), 40u * 6);
  EXPECT_EQ(a, b);
  for (int64_t i = 0; i < 40; ++i) EXPECT_EQ(a[i * 6], float(3000 + order[i]));
}

TEST(Loader, DropsThePartialLastBatchAndRunsSeveralEpochs) {
  Loader loader(kBatch, slow_maker(), 2, 2);
  std::vector<int64_t> order(10);
  for (int64_t i = 0; i < 10; ++i) order[i] = i;
  EXPECT_EQ(run_epoch(loader, 0, order).size(), 2u * 4 * 6);
  const auto second = run_epoch(loader, 1, order);
  EXPECT_EQ(second[0], 1000.f);
  EXPECT_GT(loader.samples_per_second(), 0.0);
}

TEST(Loader, MemoryStaysWithinItsSlots) {
  std::atomic<int> live{0}, peak{0};
  Loader loader(kBatch, slow_maker(&live, &peak), 8, 2);
  std::vector<int64_t> order(64, 1);
  loader.start_epoch(0, order);
  while (const Batch* b = loader.next()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // a slow consumer
    loader.release(b);
  }
  // At most `depth` batches are ever being filled, however many workers there are.
  EXPECT_LE(peak.load(), 2);
}

TEST(Loader, AWorkersErrorReachesTheConsumer) {
  Loader loader(
      kBatch,
      [](int64_t, int64_t sample, float*, int32_t*) {
        if (sample == 13) throw std::runtime_error("case_013.nii.gz: truncated");
      },
      3, 2);
  std::vector<int64_t> order(32);
  for (int64_t i = 0; i < 32; ++i) order[i] = i;
  loader.start_epoch(0, order);
  try {
    while (const Batch* b = loader.next()) loader.release(b);
    FAIL() << "expected the worker's error";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "case_013.nii.gz: truncated");
  }
  // The next epoch starts clean.
  std::vector<int64_t> fine(8, 1);
  loader.start_epoch(1, fine);
  int batches = 0;
  while (const Batch* b = loader.next()) {
    loader.release(b);
    ++batches;
  }
  EXPECT_EQ(batches, 2);
}

TEST(Loader, AbandonedEpochIsDropped) {
  Loader loader(kBatch, slow_maker(), 3, 3);
  std::vector<int64_t> order(40, 5);
  loader.start_epoch(0, order);
  const Batch* b = loader.next();
  ASSERT_NE(b, nullptr);
  loader.release(b);
  std::vector<int64_t> other(8, 9);
  EXPECT_EQ(run_epoch(loader, 2, other)[0], 2009.f);
}

TEST(Loader, RejectsNoWorkers) { EXPECT_THROW(Loader(kBatch, slow_maker(), 0, 2), std::invalid_argument); }

}  // namespace
}  // namespace unet
