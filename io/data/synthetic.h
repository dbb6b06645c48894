// A synthetic EM-like dataset, the offline default of `unet train`: cells of a
// Voronoi tessellation, dark membranes along the cell boundaries, bright
// textured interiors, Gaussian blur and noise; in 3D the same in a volume.
// The label marks the membrane (255) against the interior (0), a clean binary
// mask. Everything follows from (seed, index): the same call gives the same
// image on any machine and thread count.
#pragma once

#include <cstdint>
#include <utility>

#include "io/volume.h"

namespace unet {

struct SyntheticSpec {
  int dims = 2;
  int64_t size = 128;        // width = height (= depth in 3D)
  int cells = 40;            // Voronoi seeds per image (per volume in 3D)
  double membrane = 1.2;     // half-width of a membrane, in pixels
  double blur = 1.0;         // Gaussian sigma of the optics, in pixels
  double noise = 12.0;       // Gaussian noise sigma, in grey levels of 255
  uint64_t seed = 0;
};

// Image (grey levels 0..255, float, full_scale 255) and label (0 / 255).
std::pair<Volume, Volume> synthetic_em(const SyntheticSpec& spec, int64_t index);

}  // namespace unet
