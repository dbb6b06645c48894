// The gradient all-reduce of data parallelism, in buckets that start while
// backward is still running, so that communication overlaps compute.
//
// Buckets are runs of whole parameter tensors of about `bucket_floats`, laid
// out from the end of the gradient buffer (backward finishes the head first).
// ready(first) — wired to UNet::set_grads_ready — says the gradients from
// `first` to the end are final; a worker thread all-reduces each bucket as soon
// as it is covered, in a fixed order, so every rank issues the same collectives
// in the same order. finish() waits for the last bucket.
//
// Contract: between begin() and finish() the caller writes no gradient that a
// ready() call has already covered; after finish() every rank's buffer holds
// the sum over ranks.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "engine/parallel/communicator.h"

namespace unet {

class GradientReducer {
 public:
  // tensor_offsets: where each parameter tensor starts, ascending, the first 0.
  GradientReducer(Communicator& comm, float* grads, int64_t count, const std::vector<int64_t>& tensor_offsets,
                  int64_t bucket_floats = int64_t(25) << 18);  // 25 MiB, PyTorch DDP's default
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  void begin();               // a backward whose gradients are to be reduced starts
  void ready(int64_t first);  // gradients [first, count) are final
  void finish();              // ready(0), then waits until every bucket is reduced; rethrows a failure

  // [begin, end) of each bucket in the order they are reduced (descending).
  const std::vector<std::pair<int64_t, int64_t>>& buckets() const { return buckets_; }

 private:
  void work();

  Communicator& comm_;
  float* grads_;
  std::vector<std::pair<int64_t, int64_t>> buckets_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool active_ = false, quit_ = false;
  int64_t ready_from_ = 0;   // gradients from here to the end are final
  size_t reduced_ = 0;       // buckets done in this round
  std::exception_ptr error_;
  std::thread worker_;
};

}  // namespace unet
