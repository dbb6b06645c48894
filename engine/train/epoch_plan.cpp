#include "engine/train/epoch_plan.h"

#include <algorithm>
#include <random>
#include <stdexcept>
#include <string>

#include "io/data/patch.h"  // sample_key

namespace unet {

Shape per_rank_batch(Shape global, int world) {
  if (global.n % world)
    throw std::invalid_argument("--batch-size " + std::to_string(global.n) + " is the global batch; it does not "
                                "divide over " + std::to_string(world) + " ranks: use a multiple of " +
                                std::to_string(world));
  global.n /= world;
  return global;
}

EpochPlan make_epoch_plan(int64_t samples_per_epoch, Shape global_batch, int world, int accumulate) {
  if (accumulate < 1) throw std::invalid_argument("gradient accumulation must be at least 1 batch");
  const EpochPlan plan{samples_per_epoch, per_rank_batch(global_batch, world).n, world, accumulate};
  if (plan.steps_per_epoch() < 1)
    throw std::invalid_argument("an epoch has " + std::to_string(samples_per_epoch) + " samples: too few for batches "
                                "of " + std::to_string(plan.global_batch()) + " x " + std::to_string(accumulate) +
                                " accumulated; lower --batch-size or raise the augmentation rate");
  return plan;
}

std::vector<int64_t> EpochPlan::rank_samples(uint64_t seed, int64_t step, int rank) const {
  std::vector<int64_t> order(static_cast<size_t>(samples_per_epoch));
  for (int64_t i = 0; i < samples_per_epoch; ++i) order[i] = i;
  std::mt19937_64 rng(sample_key(seed, epoch_of(step), -1, 1));
  std::shuffle(order.begin(), order.end(), rng);
  const int64_t G = global_batch(), N = per_rank;
  std::vector<int64_t> mine;
  for (int64_t b = (step % steps_per_epoch()) * accumulate * G; b < steps_per_epoch() * accumulate * G; b += G)
    mine.insert(mine.end(), order.begin() + b + rank * N, order.begin() + b + rank * N + N);
  return mine;
}

}  // namespace unet
