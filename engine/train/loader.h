// The prefetching loader: worker threads fill a bounded ring of batch slots
// while the trainer consumes them, in order.
//
// The loader knows nothing of files: it calls make_sample(epoch, sample id,
// image, label) to fill one sample's place in a batch, and that function (the
// dataset + patch + augmentation pipeline) must depend only on its arguments.
// Batch b of an epoch always holds samples order[b * batch .. b * batch + batch),
// whichever worker made them, so training is reproducible whatever the number
// of workers.
//
// Memory is bounded by `depth` batches, whatever the dataset size: a worker
// claims the next batch only when a slot is free, and batches are handed out
// in order. Slots are pinned host memory when the CUDA backend is built, so
// that copies to the device can be asynchronous.
//
// A worker's exception (a corrupt file, say) is rethrown by next() in the
// consuming thread, with its message intact.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "io/data/patch.h"  // MakeSample
#include "kernels/base/tensor.h"

namespace unet {

struct Batch {
  int64_t index = -1;  // batch number within the epoch
  Shape shape;         // N, C, D, H, W of the images
  float* image = nullptr;
  int32_t* label = nullptr;  // N * D * H * W classes
};

class Loader {
 public:

  // batch: the shape of one batch (N = samples per batch). pinned: page-locked
  // batch buffers, for asynchronous copies to a GPU.
  Loader(Shape batch, MakeSample make_sample, int workers, int depth, bool pinned = false);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Starts filling the batches of `epoch`; order lists the sample ids, its length
  // a multiple of the batch size (a partial last batch is dropped).
  void start_epoch(int64_t epoch, std::vector<int64_t> order);

  // The next batch of the epoch in order, or nullptr when the epoch is done.
  // The batch stays valid until release(); release it before asking for the next.
  const Batch* next();
  void release(const Batch* batch);

  int64_t batches_in_epoch() const { return batches_; }
  // Over the batches handed out so far this epoch; call from the consuming thread.
  double samples_per_second() const;

 private:
  struct Slot;
  void work();
  void fill(Slot& slot, int64_t batch_index);
  void stop_workers();

  Shape shape_;
  MakeSample make_sample_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::thread> workers_;

  std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  int64_t epoch_ = 0;
  std::vector<int64_t> order_;
  int64_t batches_ = 0;
  int64_t next_claim_ = 0;    // the next batch a worker will fill
  int64_t next_deliver_ = 0;  // the next batch next() returns
  std::exception_ptr error_;
  double started_ = 0;
  int64_t delivered_samples_ = 0;
};

}  // namespace unet
