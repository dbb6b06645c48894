// TIFF files <-> Volume, through libtiff: microscopy and EM stacks (the ISBI
// challenge's own train-volume.tif).
//
// Reading: single- and multi-page files; a stack of pages is a volume (pages
// = depth, dims 3), one page an image (dims 2). Samples of 1 (bilevel), 8, 16
// or 32 bits, unsigned or signed integer, or 32-bit float; grayscale (min-is-
// white inverted to min-is-black), gray+alpha, RGB, RGBA, and palette (expanded
// to RGB, 8-bit, as the PNG reader does); strips or tiles, contiguous or
// separate planes; any compression libtiff decodes (none, LZW, Deflate,
// PackBits, ...); either byte order, classic or BigTIFF. Values are the raw
// samples as float (full_scale 2^bits - 1 for unsigned integers). Every page
// must have the first one's size and sample layout.
//
// Spacing, in mm: in-plane from XResolution/YResolution and ResolutionUnit
// (inch, cm), or, with no unit, from ImageJ's description ("unit=micron"; its
// "spacing=" gives the slice spacing); otherwise 1. Damaged files (bad magic,
// truncated data, an IFD past the end, zero or absurd sizes) are FileErrors
// naming the file and libtiff's reason.
//
// Writing: one page per slice (D pages of H x W), 1 channel or interleaved
// RGB(A), uint8, uint16 or float32, Deflate-compressed, with the spacing as
// ImageJ stores it (Fiji opens it calibrated); atomically.
#pragma once

#include <string>

#include "io/volume.h"

namespace unet {

bool is_tiff_name(const std::string& path);  // .tif, .tiff
Volume read_tiff(const std::string& path);   // throws FileError

// datatype: "uint8", "uint16" or "float32" (values rounded and clamped for the
// integers). Throws std::invalid_argument for another, FileError when it cannot write.
void write_tiff(const std::string& path, const Volume& v, const std::string& datatype = "uint8");

}  // namespace unet
