// Resampling to another voxel spacing: every case once, when it is read for
// training at a plan's spacing (nnU-Net's preprocessing), and a prediction back
// to its input's grid.
//
// Geometry: the physical extent is kept. An axis of n voxels at spacing s goes
// to m = max(1, round(n * s / t)) voxels for a target t, at spacing n * s / m
// (t itself unless n * s / t is fractional). Voxel centres are PyTorch's
// align_corners=False and scipy's zoom(grid_mode=True): output voxel i samples
// the input at (i + 0.5) * n / m - 0.5, clamped to the edge. The affine goes
// along: each axis's column scaled by n / m, the origin moved to where output
// voxel 0's centre lies.
//
// Images and probabilities: linear along each axis (trilinear; bilinear in 2D).
// Labels: per-class linear (nnU-Net's): each output voxel takes the value whose
// interpolated indicator is largest (ties to the smaller value), so a class is
// lost only where it is thinner than the new voxels. A 2D volume is resampled
// in its plane; its z spacing is left as it is. A target of 0 along an axis
// keeps that axis as it is (a 2D net's slicing axis).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "io/volume.h"

namespace unet {

using Spacing = std::array<double, 3>;  // x, y, z, as Volume::spacing

// Whether a volume's spacing agrees with a target within 0.1% on every axis
// the volume has (2D: x, y) and the target gives (not 0).
bool same_spacing(const Spacing& spacing, const Spacing& target, int dims);

// The grid (D, H, W) a volume of this grid and spacing takes at `target`.
std::array<int64_t, 3> resampled_grid(const std::array<int64_t, 3>& grid, const Spacing& spacing,
                                      const Spacing& target, int dims);

// Every channel, linear, onto `grid` (D, H, W): `in` holds channels x the
// input grid, the result channels x `grid`.
std::vector<float> resample_linear(const std::vector<float>& in, int64_t channels, const std::array<int64_t, 3>& from,
                                   const std::array<int64_t, 3>& to);

// Per-class linear, onto `to`.
std::vector<int32_t> resample_labels(const std::vector<int32_t>& in, const std::array<int64_t, 3>& from,
                                     const std::array<int64_t, 3>& to);

// The volume at `target` spacing: voxels linear, spacing and affine moved with
// them, the NIfTI header dropped (it describes the file's grid, no longer this).
Volume resample_image(const Volume& v, const Spacing& target);

}  // namespace unet
