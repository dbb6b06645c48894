// Which samples a rank trains on, step by step: the pure arithmetic of the
// epoch, apart from the trainer so that it can be read and tested alone.
//
// Each epoch's order is a shuffle keyed on (seed, epoch), the same on every
// rank. A step takes `accumulate` global batches in that order; rank r takes
// samples [r N, (r + 1) N) of each global batch (N the per-rank batch). A
// partial last step of an epoch is dropped, and a run resumed mid-epoch skips
// the batches already used instead of recomputing them.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/base/tensor.h"

namespace unet {

// The per-rank batch of a global batch over `world` ranks; throws
// std::invalid_argument (naming --batch-size) when it does not divide.
Shape per_rank_batch(Shape global, int world);

struct EpochPlan {
  int64_t samples_per_epoch = 0;
  int64_t per_rank = 1;  // N, samples per rank per batch
  int world = 1;
  int accumulate = 1;    // batches per optimizer step

  int64_t global_batch() const { return per_rank * world; }
  int64_t steps_per_epoch() const { return samples_per_epoch / global_batch() / accumulate; }
  int64_t epoch_of(int64_t step) const { return step / steps_per_epoch(); }
  // Rank `rank`'s samples, in order, for the steps of step's epoch from `step` on.
  std::vector<int64_t> rank_samples(uint64_t seed, int64_t step, int rank) const;
};

// The plan, checked: throws std::invalid_argument when an epoch holds no step.
EpochPlan make_epoch_plan(int64_t samples_per_epoch, Shape global_batch, int world, int accumulate);

}  // namespace unet
