// An image or a label map as read from disk: float voxels, channels first, and
// the geometry that came with them.
//
// Axes follow the files' own order: NIfTI's i, j, k (and PNG's x, y) are our
// W, H, D, so voxels[((c * d + z) * h + y) * w + x] is NIfTI voxel (x, y, z) of
// channel c (a 4D file's 4th dimension), the same element nibabel returns as
// img.get_fdata()[x, y, z, c]. spacing is (x, y, z) in the file's units (mm for
// the scanners' files); affine maps (x, y, z, 1) to world coordinates, row-major,
// as nibabel's img.affine.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/file_error.h"
#include "kernels/base/tensor.h"

namespace unet {

struct NiftiHeader;  // the header as read, kept so that a writer can reproduce it (io/nifti.h)

struct Volume {
  int64_t c = 1, d = 1, h = 1, w = 1;
  int dims = 2;                          // 2 for PNG and 2D NIfTI, 3 for volumes
  std::vector<float> voxels;             // c * d * h * w
  std::array<double, 3> spacing{1, 1, 1};  // x, y, z
  std::array<double, 16> affine{1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
  double full_scale = 0;                 // the largest value the stored type holds (255 for
                                         // 8-bit PNG); 0 for floating-point data
  std::string datatype;                  // as stored: "uint8", "int16", "float32", ...
  std::string path;                      // where it was read from
  std::shared_ptr<const NiftiHeader> nifti;  // set by the NIfTI reader

  int64_t spatial() const { return d * h * w; }
  std::array<int64_t, 3> grid() const { return {d, h, w}; }  // the spatial sizes, D, H, W
  int64_t count() const { return c * spatial(); }
  Shape shape() const { return {1, c, d, h, w, dims}; }  // as one sample of a batch
  bool same_grid(const Volume& o) const { return d == o.d && h == o.h && w == o.w; }
};


}  // namespace unet
