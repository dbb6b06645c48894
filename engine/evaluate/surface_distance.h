// Overlap and surface-distance scores of a predicted mask against a reference,
// in physical units: Dice, IoU, precision, recall, the Hausdorff distance and
// its 95th percentile (HD95, as MONAI computes it: the larger of the two
// directed 95th percentiles). Surfaces are the voxels of a mask with a
// 6-neighbour (4 in 2D) outside it or beyond the border; distances from one
// surface to the other come from an exact Euclidean distance transform
// (Felzenszwalb and Huttenlocher) with the voxel spacing.
//
// Empty masks: both empty gives NaN everywhere (nothing to score); one empty
// gives Dice 0 and infinite distances.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace unet {

struct SegmentationScores {
  double dice = 0, iou = 0, precision = 0, recall = 0, hausdorff = 0, hd95 = 0;
};

// Masks are one byte per voxel (non-zero = inside), dims {D, H, W}, spacing {z, y, x}.
SegmentationScores score_masks(const std::vector<uint8_t>& prediction, const std::vector<uint8_t>& reference,
                               std::array<int64_t, 3> dims, std::array<double, 3> spacing);

// Squared distance from every voxel to the nearest voxel where `seed` is set
// (infinity when there is none), with the spacing.
std::vector<double> squared_distance_transform(const std::vector<uint8_t>& seed, std::array<int64_t, 3> dims,
                                               std::array<double, 3> spacing);

}  // namespace unet
