#include "kernels/subsample.h"

#include <stdexcept>
#include <string>

namespace unet {

Grid subsampled_grid(const Grid& in, const Grid& stride) {
  Grid out;
  for (int a = 0; a < 3; ++a) {
    out[a] = stride[a] > 0 ? in[a] / stride[a] : 0;
    if (out[a] < 1)
      throw std::invalid_argument("subsample_labels: axis " + std::to_string(a) + " of " + std::to_string(in[a]) +
                                  " voxels cannot be subsampled by " + std::to_string(stride[a]));
  }
  return out;
}

void subsample_labels(const int32_t* in, int64_t n, const Grid& grid, const Grid& stride, int32_t* out) {
  const Grid o = subsampled_grid(grid, stride);
  const int64_t fine = grid[0] * grid[1] * grid[2], coarse = o[0] * o[1] * o[2];
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t s = 0; s < n; ++s)
    for (int64_t z = 0; z < o[0]; ++z)
      for (int64_t y = 0; y < o[1]; ++y)
        for (int64_t x = 0; x < o[2]; ++x)
          out[s * coarse + (z * o[1] + y) * o[2] + x] =
              in[s * fine + subsample_source(z, y, x, stride[0], stride[1], stride[2], grid[1], grid[2])];
}

}  // namespace unet
