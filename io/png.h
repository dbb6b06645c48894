// PNG files <-> Volume, through libpng.
//
// Reading: every bit depth (1, 2, 4, 8, 16) and colour type, interlaced or not,
// becomes float with the raw sample values (0..1 for 1-bit, 0..255 for 8-bit,
// 0..65535 for 16-bit; Volume.full_scale is 2^bits - 1), so that a label map's
// values survive exactly. Channels: gray 1, gray+alpha 2, RGB 3, RGBA 4; a
// palette expands to RGB (RGBA when it has transparency), 8-bit. dims is 2, d is
// 1, spacing 1. datatype is "uint1" ... "uint16" (the sample depth).
// Damaged files (bad signature, CRC, truncation, zero size) are FileErrors naming
// the file and libpng's reason.
//
// Writing: 1 channel = grayscale, 2 = gray+alpha, 3 = RGB, 4 = RGBA, at 8 or 16
// bits; values are rounded and clamped to 0..2^bits-1 (NaN becomes 0). Files
// appear atomically (written beside the target, then renamed).
#pragma once

#include <string>

#include "io/volume.h"

namespace unet {

Volume read_png(const std::string& path);  // throws FileError

// Throws std::invalid_argument for a volume that is not one 2D slice of 1 to 4
// channels or a bit depth other than 8 and 16; FileError when it cannot write.
void write_png(const std::string& path, const Volume& v, int bit_depth = 8);

}  // namespace unet
