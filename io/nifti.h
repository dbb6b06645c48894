// NIfTI-1 and NIfTI-2 files (.nii, .nii.gz, .hdr/.img pairs) <-> Volume, through
// nifti_clib.
//
// Reading: every integer and float datatype scanners write (uint8 ... uint64,
// float32, float64) becomes float with scl_slope/scl_inter applied (slope 0 or
// non-finite means none, as the standard says); full_scale is the integer
// type's largest value (scaled), 0 for floats. Spacing is pixdim[1..3] (1 where
// absent, zero or negative). A 4D file's 4th dimension is the channels; 5D and
// above, complex and RGB data are refused. The header is validated before any
// voxel is read, so a corrupt or absurd file is a FileError naming the file and
// the field, never a crash or a 100 GB allocation.
// The affine is the sform when sform_code > 0, else the qform when
// qform_code > 0, else diag(pixdim) (the standard's "method 1"; nibabel would
// use its Analyze-style centred affine there instead).
//
// Writing keeps the input's geometry (pixdim, qform and its quaternion, sform,
// their codes, units) when the Volume carries a NiftiHeader, so a prediction
// overlays its input in any viewer. Files appear atomically (written beside the
// target, then renamed), so a crash never leaves a half-written file.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "io/volume.h"

namespace unet {

// The header fields that describe a file's geometry and meaning, as read (after
// byte swapping). Plain types only, so that users need not see nifti_clib.
struct NiftiHeader {
  int version = 1;                    // 1 (348-byte header) or 2 (540-byte header)
  bool big_endian = false;            // as stored on disk
  int datatype = 16;                  // NIfTI DT_* code as stored
  std::array<int64_t, 8> dim{};       // dim[0] = number of dimensions
  std::array<double, 8> pixdim{};     // pixdim[0] = qfac
  double scl_slope = 0, scl_inter = 0;
  double cal_min = 0, cal_max = 0;
  int qform_code = 0, sform_code = 0;
  double quatern_b = 0, quatern_c = 0, quatern_d = 0;
  double qoffset_x = 0, qoffset_y = 0, qoffset_z = 0, qfac = 1;
  std::array<double, 16> qform{};     // row-major 4x4, from the quaternion
  std::array<double, 16> sform{};     // row-major 4x4, srow_x/y/z and 0 0 0 1
  int xyz_units = 0, time_units = 0;  // NIFTI_UNITS_* codes
  int intent_code = 0;
  double intent_p1 = 0, intent_p2 = 0, intent_p3 = 0;
  std::string intent_name, descrip, aux_file;
  int freq_dim = 0, phase_dim = 0, slice_dim = 0, slice_code = 0;
  int64_t slice_start = 0, slice_end = 0;
  double slice_duration = 0, toffset = 0;
};

// Reads `path` (.nii, .nii.gz, .hdr or .img; the other half of a pair is found
// beside it). Throws FileError.
Volume read_nifti(const std::string& path);

// Writes v to `path` (.nii or .nii.gz) with `datatype` one of "uint8", "int8",
// "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64".
// Integer types round to nearest and clamp to the type's range; a NaN cannot be
// written to an integer type (std::invalid_argument). Values are stored
// unscaled (scl_slope 0). With v.nifti set, its geometry is kept and v's grid must
// be the header's; without, pixdim is v.spacing and both forms are v.affine
// (codes 1, scanner). A NIfTI-2 input is written as NIfTI-2.
// Throws FileError when the file cannot be written, std::invalid_argument for a
// bad datatype, extension, or a grid that contradicts the header.
void write_nifti(const std::string& path, const Volume& v, const std::string& datatype = "float32");

// The axis codes of an affine, one letter per voxel axis, each the direction in
// which that axis increases (nibabel's aff2axcodes): "LAS", "RAS", "LPS", ...
std::string nifti_orientation(const std::array<double, 16>& affine);

}  // namespace unet
