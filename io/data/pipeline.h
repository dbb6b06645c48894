// The data side of `unet train`: a dataset on disk (or the synthetic default)
// split, loaded, label-converted and normalized into samples in memory, and the
// loader's sample maker that cuts patches and augments them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/data/augment.h"
#include "io/data/dataset.h"
#include "io/data/labels.h"
#include "io/data/normalize.h"
#include "io/data/patch.h"
#include "io/data/resample.h"

namespace unet {

struct DataOptions {
  std::string path;                       // empty: the synthetic EM-like default
  std::vector<std::string> val_cases;     // explicit validation ids
  double val_fraction = 0.2;
  int fold = -1, folds = 5;               // k-fold: fold >= 0
  LabelSpec labels;
  std::vector<ChannelNorm> norm;          // one per channel (the first repeated)
  Spacing spacing{0, 0, 0};               // x, y, z each case is resampled to; 0: the cases' own (z 0 in 2D)
  PatchSpec patch;
  AugmentSpec augment;
  uint64_t seed = 0;
  int net_dims = 2;                       // the model's: a 2D net on volumes trains on their slices
  int slice_axis = 0;                     // ... along this axis (slices.h: 0 z, 1 y, 2 x)
  int synthetic_dims = 2;                 // the default's dims
  int64_t synthetic_size = 128;
  bool verbose = false;                   // print each case as it is loaded
};

struct PreparedData {
  std::vector<std::string> train_ids, val_ids;
  std::vector<Sample> train, val;
  std::vector<ForegroundIndex> foreground;  // of each training sample
  NormalizationStats normalization;
  int64_t channels = 1;
  int dims = 2;
  Spacing spacing{0, 0, 0};  // what the cases were resampled to; 0: their own
  // >= 0: a 2D net on volumes. Every case's axes reordered so that this one
  // comes first (slices.h); the training cases cut into their slices, the
  // validation cases kept whole (a 2D net predicts a volume slice by slice).
  int slice_axis = -1;
};

// Loads everything; prints what it found. Throws FileError / invalid_argument.
std::shared_ptr<PreparedData> prepare_data(const DataOptions& opt);

// The loader's sample maker over prepared data (shared, read-only).
MakeSample make_sampler(std::shared_ptr<const PreparedData> data, const PatchSpec& patch,
                                const AugmentSpec& augment, uint64_t seed, Shape sample_shape);

}  // namespace unet
