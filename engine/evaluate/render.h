// Pictures for people: an image with label and prediction contours, and the
// learning curve. Both return 8-bit RGB volumes (c = 3) for write_png.
//
// Overlay: the image's first channel, min-max scaled to grey; the boundary of
// every labelled class in green, of every predicted class in red, yellow where
// they coincide. A boundary pixel is one with a 4-neighbour of another class.
// Learning curve: training loss (blue, scaled to its largest value) and
// validation mean foreground Dice (orange, 0 at the bottom, 1 at the top)
// against the step, on a light grid of tenths.
#pragma once

#include <cstdint>
#include <vector>

#include "io/volume.h"

namespace unet {

// image: h x w floats; label, prediction: h x w classes (either may be null).
Volume overlay_rgb(const float* image, int64_t h, int64_t w, const int32_t* label, const int32_t* prediction);

// Nearest-neighbour resize of an RGB slice to (h, w): volumes' planes shown at
// their physical aspect ratio.
Volume resize_rgb(const Volume& rgb, int64_t h, int64_t w);

struct CurvePoint {
  double step, value;
};
Volume learning_curve(const std::vector<CurvePoint>& loss, const std::vector<CurvePoint>& dice, int64_t width = 800,
                      int64_t height = 400);

}  // namespace unet
