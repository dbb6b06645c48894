// Data augmentation of one Sample, 2D and 3D, every transform with its own
// probability, all randomness from the generator passed in (sample_rng: the
// same key gives the same bytes whatever the thread).
//
// Spatial transforms move image and label together: flips (each axis), rot90
// in the H-W plane, and one resampling that combines rotation, scaling and
// elastic deformation (a Gaussian-smoothed random displacement field), linear
// for the image and nearest for the label so that classes stay classes.
// Voxels that come from outside the input get fill_value / fill_label.
// Intensity transforms touch the image only: brightness (multiplicative),
// contrast (around the channel mean), gamma (on the channel's min..max range),
// Gaussian noise and Gaussian blur. They run after the spatial ones.
//
// With every probability 0, or enabled == false, the sample is left untouched
// (bit-identical). The defaults follow nnU-Net's.
#pragma once

#include <array>
#include <cstdint>
#include <random>
#include <string>

#include "io/data/patch.h"

namespace unet {

enum class Interp { nearest, linear };

struct AugmentSpec {
  bool enabled = true;

  double p_flip = 0.5;         // per axis (x, y, and z for 3D)
  double p_rot90 = 0.5;        // a quarter turn k = 1..3 in H-W; k = 2 only when h != w
  double p_rotate = 0.2;       // rotation by an angle from rotate_degrees
  double rotate_degrees = 30;  // uniform in [-r, r]; 3D: about each axis
  bool rotate_in_plane = false;  // 3D: about the z axis only (thick slices, e.g. the lung's 5 mm)
  double p_scale = 0.2;        // zoom s from [scale_lo, scale_hi]; s > 1 magnifies
  double scale_lo = 0.7, scale_hi = 1.4;
  double p_elastic = 0.0;      // nnU-Net leaves it off by default
  double elastic_alpha = 8;    // displacement magnitude, voxels
  double elastic_sigma = 6;    // smoothing of the displacement field, voxels
  Interp image_interp = Interp::linear;  // labels are always nearest
  float fill_value = 0;
  int32_t fill_label = 0;

  double p_brightness = 0.15;  // x *= b, b from [0.75, 1.25]
  double brightness_lo = 0.75, brightness_hi = 1.25;
  double p_contrast = 0.15;    // x = (x - mean) * f + mean, f from [0.75, 1.25]
  double contrast_lo = 0.75, contrast_hi = 1.25;
  double p_gamma = 0.3;        // on [min, max] rescaled to [0, 1]: x^g, g from [0.7, 1.5]
  double gamma_lo = 0.7, gamma_hi = 1.5;
  double p_noise = 0.1;        // + N(0, s^2), s from [0, noise_sigma]
  double noise_sigma = 0.1;
  double p_blur = 0.2;         // Gaussian blur, sigma from [0.5, 1.0] voxels
  double blur_lo = 0.5, blur_hi = 1.0;

  // Augmented copies per case per epoch (the cluster U-Net modules'
  // --augmentation_rate); see samples_per_epoch.
  int rate = 0;

  AugmentSpec& off();  // every probability 0
};

// The epoch's length and what sample i is. rate 0: every case once, augmented
// (nnU-Net's way). rate r > 0: every case 1 + r times, copy 0 as it is and
// copies 1..r augmented. Sample i is case i % cases, copy i / cases, so that
// each pass over the cases is one copy. Disabled augmentation: cases samples.
int64_t samples_per_epoch(int64_t cases, const AugmentSpec& spec);
struct SampleRef {
  int64_t case_index = 0;
  int64_t copy = 0;
  bool augment = false;
};
SampleRef sample_ref(int64_t sample, int64_t cases, const AugmentSpec& spec);

// Applies the spec's transforms in place. The shape is kept (rot90 by an odd
// k is only drawn for square planes).
void augment(Sample& s, const AugmentSpec& spec, std::mt19937_64& rng);

// The single transforms, exact and deterministic, for tests and for callers
// that compose their own. axis: 0 = z (D), 1 = y (H), 2 = x (W).
void flip(Sample& s, int axis);
void rot90(Sample& s, int k);  // counter-clockwise quarter turns in the H-W plane (x -> y)
// Resamples through the output->input map p_in = centre + A (p_out - centre) + disp(p_out),
// A a 3x3 matrix over (z, y, x); disp (3 x spatial, z y x components) may be null.
void resample(Sample& s, const std::array<double, 9>& A, const float* disp, Interp image_interp,
              float fill_value, int32_t fill_label);
void gaussian_blur(float* data, int64_t d, int64_t h, int64_t w, int dims, double sigma);

}  // namespace unet
