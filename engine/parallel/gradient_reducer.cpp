#include "engine/parallel/gradient_reducer.h"

#include <stdexcept>

namespace unet {

GradientReducer::GradientReducer(Communicator& comm, float* grads, int64_t count,
                                 const std::vector<int64_t>& tensor_offsets, int64_t bucket_floats)
    : comm_(comm), grads_(grads), ready_from_(count) {
  if (tensor_offsets.empty() || tensor_offsets.front() != 0 || bucket_floats < 1)
    throw std::invalid_argument("GradientReducer: tensor offsets must start at 0, buckets hold at least 1 value");
  int64_t end = count;
  for (size_t t = tensor_offsets.size(); t-- > 0;) {
    const int64_t begin = tensor_offsets[t];
    if (end - begin >= bucket_floats || t == 0) {
      buckets_.push_back({begin, end});
      end = begin;
    }
  }
  worker_ = std::thread([this] { work(); });
}

GradientReducer::~GradientReducer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  worker_.join();
}

void GradientReducer::begin() {
  std::lock_guard<std::mutex> lock(mu_);
  active_ = true;
  reduced_ = 0;
  ready_from_ = buckets_.front().second;
  error_ = nullptr;
}

void GradientReducer::ready(int64_t first) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!active_ || first >= ready_from_) return;
    ready_from_ = first;
  }
  cv_.notify_all();
}

void GradientReducer::finish() {
  ready(0);
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return reduced_ == buckets_.size() || error_; });
  active_ = false;
  if (error_) std::rethrow_exception(error_);
}

void GradientReducer::work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] {
      return quit_ || (active_ && !error_ && reduced_ < buckets_.size() && buckets_[reduced_].first >= ready_from_);
    });
    if (quit_) return;
    const auto [begin, end] = buckets_[reduced_];
    lock.unlock();
    std::exception_ptr failed;
    try {
      comm_.all_reduce_sum(grads_ + begin, end - begin);
    } catch (...) {
      failed = std::current_exception();
    }
    lock.lock();
    if (failed)
      error_ = failed;
    else
      ++reduced_;
    cv_.notify_all();
  }
}

}  // namespace unet
