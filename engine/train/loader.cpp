#include "engine/train/loader.h"

#include <chrono>
#include <stdexcept>
#include <string>

#include "engine/device/host_buffer.h"

namespace unet {

namespace {
double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

struct Loader::Slot {
  enum State { free, filling, ready, in_use };
  State state = free;
  Batch batch;
  HostBuffer image, label;
};

Loader::Loader(Shape batch, MakeSample make_sample, int workers, int depth, bool pinned)
    : shape_(batch), make_sample_(std::move(make_sample)) {
  if (workers < 1 || depth < 1)
    throw std::invalid_argument("Loader: needs at least one worker and one slot, got " + std::to_string(workers) +
                                " and " + std::to_string(depth));
  for (int i = 0; i < depth; ++i) {
    auto s = std::make_unique<Slot>();
    s->image = HostBuffer(sizeof(float) * batch.count(), pinned);
    s->label = HostBuffer(sizeof(int32_t) * batch.n * batch.spatial(), pinned);
    s->batch.shape = batch;
    s->batch.image = s->image.as<float>();
    s->batch.label = s->label.as<int32_t>();
    slots_.push_back(std::move(s));
  }
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { work(); });
}

Loader::~Loader() {
  stop_workers();
}

void Loader::stop_workers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

void Loader::start_epoch(int64_t epoch, std::vector<int64_t> order) {
  std::unique_lock<std::mutex> lock(mutex_);
  // Batches of an abandoned epoch still being filled are finished, then dropped.
  changed_.wait(lock, [this] {
    for (auto& s : slots_)
      if (s->state == Slot::filling) return false;
    return true;
  });
  for (auto& s : slots_) {
    if (s->state == Slot::in_use) throw std::logic_error("Loader::start_epoch: a batch was not released");
    s->state = Slot::free;
  }
  epoch_ = epoch;
  order_ = std::move(order);
  batches_ = static_cast<int64_t>(order_.size()) / shape_.n;
  next_claim_ = next_deliver_ = 0;
  error_ = nullptr;
  delivered_samples_ = 0;
  started_ = now_seconds();
  lock.unlock();
  changed_.notify_all();
}

void Loader::work() {
  for (;;) {
    Slot* slot = nullptr;
    int64_t index = 0, epoch = 0;
    std::vector<int64_t> samples;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] {
        if (stopping_) return true;
        if (error_ || next_claim_ >= batches_) return false;
        for (auto& s : slots_)
          if (s->state == Slot::free) return true;
        return false;
      });
      if (stopping_) return;
      for (auto& s : slots_)
        if (s->state == Slot::free) {
          slot = s.get();
          break;
        }
      index = next_claim_++;
      epoch = epoch_;
      samples.assign(order_.begin() + index * shape_.n, order_.begin() + (index + 1) * shape_.n);
      slot->state = Slot::filling;
      slot->batch.index = index;
    }
    std::exception_ptr error;
    try {
      const int64_t image_size = shape_.sample(), label_size = shape_.spatial();
      for (int64_t i = 0; i < shape_.n; ++i)
        make_sample_(epoch, samples[i], slot->batch.image + i * image_size, slot->batch.label + i * label_size);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (error) {
        if (!error_) error_ = error;
        slot->state = Slot::free;
      } else {
        slot->state = Slot::ready;
      }
    }
    changed_.notify_all();
  }
}

const Batch* Loader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (next_deliver_ >= batches_) return nullptr;
  Slot* found = nullptr;
  changed_.wait(lock, [&] {
    if (error_) return true;
    for (auto& s : slots_)
      if (s->state == Slot::ready && s->batch.index == next_deliver_) {
        found = s.get();
        return true;
      }
    return false;
  });
  if (error_) {
    std::exception_ptr e = error_;
    next_deliver_ = batches_;  // the epoch ends here
    std::rethrow_exception(e);
  }
  found->state = Slot::in_use;
  ++next_deliver_;
  delivered_samples_ += shape_.n;
  return &found->batch;
}

void Loader::release(const Batch* batch) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& s : slots_)
      if (&s->batch == batch) s->state = Slot::free;
  }
  changed_.notify_all();
}

double Loader::samples_per_second() const {
  const double elapsed = now_seconds() - started_;
  return elapsed > 0 ? double(delivered_samples_) / elapsed : 0.0;
}

}  // namespace unet
