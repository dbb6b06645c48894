// One rank's part in a data-parallel run, as one object: it broadcasts rank
// 0's parameters and state, hands the model its hooks (ParallelHooks: the
// gradient buckets' all-reduce, synchronized batch norm, the rank's first
// sample), gives the train step its reducers, and makes the run's decisions
// alike on every rank. The destructor takes the hooks back: the model outlives
// the reducer and the communicators.
//
// On GPUs the parameters and gradients go over `tensors` (NCCL, in device
// memory) and the host values over `host` (Gloo); the gradient all-reduce then
// queues on the compute stream after backward rather than overlapping it.
#pragma once

#include <memory>

#include "engine/model/unet_model.h"
#include "engine/parallel/communicator.h"
#include "engine/parallel/gradient_reducer.h"
#include "kernels/loss.h"

namespace unet {

class DataParallel {
 public:
  // per_rank: this rank's samples per batch. sync_batchnorm: batch norm's
  // statistics over the global batch; its reductions run inside backward, so
  // the gradient buckets then wait for the end of backward.
  DataParallel(UNet& model, Communicator& host, Communicator& tensors, int64_t per_rank, bool sync_batchnorm);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  GradientReducer* reducer() { return reducer_.get(); }
  LossSumsReducer loss_sums() const;  // the loss's batch sums over ranks
  bool any(bool flag);                // true on every rank when true on one (a stop request)
  double from_lead(double x);         // rank 0's x on every rank (the validation score)
  void barrier() { host_.barrier(); }

 private:
  UNet& model_;
  Communicator& host_;
  std::unique_ptr<GradientReducer> reducer_;
};

}  // namespace unet
