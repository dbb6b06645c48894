// Whole-image prediction with a network planned for a fixed window: the image
// is covered by overlapping tiles (the network's input size; its output size
// where "valid" convolutions shrink it), each tile's logits are weighted by a
// Gaussian centred on the tile (sigma = 1/8 of the tile, as nnU-Net) and the
// weighted sum is divided by the summed weights. Tiles run in batches of the
// planned batch size. Where the image is smaller than a tile, or a "valid"
// network needs context beyond the border, the image is padded with zeros (the
// mean after z-scoring). Mirroring averages the logits over every flip of the
// spatial axes (4 in 2D, 8 in 3D). A 2D network on a volume (D > 1) tiles it
// one slice deep: it predicts the volume slice by slice along D.
//
// Contract: reads the image (channels x D x H x W, normalized) and the model's
// parameters (inference mode: running statistics, no dropout); returns logits,
// out_channels x D x H x W, at the image's own size.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "engine/model/unet_model.h"

namespace unet {

struct WindowSpec {
  double overlap = 0.5;  // fraction of a tile shared with its neighbour, [0, 1)
  bool mirror = false;
};

// dims: {D, H, W} of the image.
std::vector<float> predict_logits(UNet& model, const float* image, std::array<int64_t, 3> dims,
                                  const WindowSpec& spec);

// Tile origins along one axis of `size` for tiles of `tile` with `overlap`:
// evenly spread from 0 to size - tile (0 alone when the tile covers the axis).
std::vector<int64_t> tile_origins(int64_t size, int64_t tile, double overlap);

}  // namespace unet
