// Reading any supported image by its name, and describing what was read.
//
//   .nii, .nii.gz, .hdr / .img (NIfTI-1 and NIfTI-2)  -> io/nifti.h
//   .png                                              -> io/png.h
//   .tif, .tiff (pages of a stack: a volume's slices)  -> io/tiff.h
// Extensions are matched case-insensitively. Every failure is a FileError
// naming the file and what is wrong with it.
#pragma once

#include <string>

#include "io/volume.h"

namespace unet {

bool is_image_file(const std::string& path);  // by extension
// A file's name without its folder and image extension ("a/case7.nii.gz" -> "case7"): a case's id.
std::string image_stem(const std::string& path);
Volume read_image(const std::string& path);

// What `unet info` prints: format, dimensions, channels, datatype, spacing,
// value range (min, max, mean; NaN/Inf counted), and for NIfTI the
// orientation (axis codes such as "LPS" from the qform/sform) and the affine.
std::string describe(const Volume& v);

// Throws FileError naming v.path and the first NaN or Inf voxel (x, y, z, channel)
// and how many there are: readers keep such voxels, the dataset layer refuses them.
void check_finite(const Volume& v);


}  // namespace unet
