// CUDA launcher for deep supervision's label subsampling (subsample.h): one
// thread per coarse voxel, reading subsample_source's fine voxel, as the CPU.
#include "kernels/base/cuda_check.h"
#include "kernels/base/cuda_launch.h"
#include "kernels/subsample.h"

namespace unet {
namespace {

struct Geometry {
  int64_t h, w;          // the fine plane
  int64_t sd, sh, sw;    // the stride
  int64_t od, oh, ow;    // the coarse grid
  int64_t fine, coarse;  // voxels per sample
};

__global__ void subsample_kernel(const int32_t* in, Geometry g, int32_t* out, int64_t total) {
  UNET_GRID_LOOP(i, total) {
    const int64_t s = i / g.coarse, e = i % g.coarse;
    const int64_t z = e / (g.oh * g.ow), y = e / g.ow % g.oh, x = e % g.ow;
    out[i] = in[s * g.fine + subsample_source(z, y, x, g.sd, g.sh, g.sw, g.h, g.w)];
  }
}

}  // namespace

void subsample_labels_cuda(const int32_t* in, int64_t n, const Grid& grid, const Grid& stride, int32_t* out,
                           Stream stream) {
  const Grid o = subsampled_grid(grid, stride);
  const Geometry g{grid[1], grid[2], stride[0], stride[1], stride[2], o[0], o[1], o[2],
                   grid[0] * grid[1] * grid[2], o[0] * o[1] * o[2]};
  const int64_t total = n * g.coarse;
  subsample_kernel<<<blocks_for(total), kThreads, 0, stream>>>(in, g, out, total);
  UNET_CUDA_CHECK_LAUNCH();
}

}  // namespace unet
