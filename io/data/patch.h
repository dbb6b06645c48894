// Training samples and the patches cut from them.
//
// A Sample is one case in memory after label conversion and normalization:
// float image c x d x h x w (channels first, W fastest) and int32 classes
// d x h x w (empty when the case is unlabelled). A 2D sample has d == 1.
//
// Every random choice comes from sample_rng(seed, epoch, index): a generator
// keyed on the sample's identity, not on the thread that makes it, so the same
// key gives the same bytes whatever the number of loader workers.
//
// Patches: a window of the patch size at a uniformly random position, or, for a
// fraction of samples (nnU-Net's 1/3 by default), a window centred on a random
// foreground voxel (label > 0; a random class first, then a voxel of it, so
// that rare classes get their share). Where the image is smaller than the
// patch the window sticks out and the outside is padding: the image gets
// pad_value (0, the mean after z-scoring) and labels get pad_label, 0
// (background) by default; set it to the loss's ignore_label to leave padding
// out of the loss.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "kernels/base/tensor.h"

namespace unet {

struct Sample {
  int64_t c = 1, d = 1, h = 1, w = 1;
  int dims = 2;
  std::vector<float> image;    // c * d * h * w
  std::vector<int32_t> label;  // d * h * w, or empty

  int64_t spatial() const { return d * h * w; }
  std::array<int64_t, 3> grid() const { return {d, h, w}; }  // the spatial sizes, D, H, W
  Shape shape() const { return {1, c, d, h, w, dims}; }
  bool labelled() const { return !label.empty(); }
};

// A generator for sample `index` of `epoch`; `stream` tells apart independent
// uses of the same key (patch placement, augmentation).
uint64_t sample_key(uint64_t seed, int64_t epoch, int64_t index, uint64_t stream = 0);
std::mt19937_64 sample_rng(uint64_t seed, int64_t epoch, int64_t index, uint64_t stream = 0);

// Fills one sample's place in a batch (image C x [D x] H x W, label [D x] H x W);
// it must depend only on its arguments, so that any worker may call it.
using MakeSample = std::function<void(int64_t epoch, int64_t sample, float* image, int32_t* label)>;

struct PatchSpec {
  std::array<int64_t, 3> size{1, 0, 0};  // d, h, w; 0 along an axis: the whole extent
  bool whole = false;                     // the whole image, padded up to `multiple`
  int64_t multiple = 1;                   // whole images: pad d (3D), h, w up to a multiple
  double foreground_fraction = 1.0 / 3;   // share of patches centred on foreground
  float pad_value = 0;
  int32_t pad_label = 0;
};

// The voxel indices of each class c > 0 present, by class; build once per case
// to make foreground sampling O(1) per patch.
struct ForegroundIndex {
  std::vector<int32_t> classes;              // the classes > 0 present, ascending
  std::vector<std::vector<int64_t>> voxels;  // voxels[i]: linear indices of classes[i]
  bool empty() const { return classes.empty(); }
};
ForegroundIndex index_foreground(const Sample& s);

// The window [z0, z0 + d) x [y0, y0 + h) x [x0, x0 + w), padded where it leaves the image.
Sample crop(const Sample& s, std::array<int64_t, 3> origin, std::array<int64_t, 3> size,
            float pad_value, int32_t pad_label);

// One patch per spec. fg may be null (computed on the fly when needed).
// *centred, if given, says whether the patch was centred on foreground.
Sample extract_patch(const Sample& s, const PatchSpec& spec, std::mt19937_64& rng,
                     const ForegroundIndex* fg = nullptr, bool* centred = nullptr);

// The shape extract_patch returns for an input of shape `image` (for the
// loader's batch shape); throws std::invalid_argument for an invalid spec.
Shape patch_shape(const Shape& image, const PatchSpec& spec);

// Copies a sample into its place in a batch (the loader's image / label
// pointers); throws std::invalid_argument when its shape is not `expected`
// (n ignored). An unlabelled sample's labels are filled with `missing_label`.
void write_to(const Sample& s, const Shape& expected, float* image, int32_t* label, int32_t missing_label = 0);

}  // namespace unet
