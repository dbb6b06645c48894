// CUDA confusion counts (metrics.h): one thread per voxel, predicted_class (the
// CPU's), integer atomics into tp / predicted / labelled counters, and the first
// voxel with a label outside the classes.
#include <climits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/base/cuda_check.h"
#include "kernels/base/cuda_launch.h"
#include "kernels/metrics.h"

namespace unet {
namespace {

__global__ void confusion_kernel(const float* logits, const int32_t* labels, int64_t plane, int64_t stride,
                                 int64_t voxels, int k, bool sig, int32_t ignore_label, unsigned long long* tp,
                                 unsigned long long* pred, unsigned long long* lab, unsigned long long* first_bad) {
  UNET_GRID_LOOP(i, voxels) {
    const int32_t label = labels[i];
    if (label == ignore_label && ignore_label >= 0) continue;
    if (label < 0 || label >= k) {
      atomicMin(first_bad, static_cast<unsigned long long>(i));
      continue;
    }
    const int p = predicted_class(logits + (i / plane) * stride + i % plane, plane, k, sig);
    atomicAdd(pred + p, 1ull);
    atomicAdd(lab + label, 1ull);
    if (p == label) atomicAdd(tp + p, 1ull);
  }
}

}  // namespace

void confusion_accumulate_cuda(const Tensor& logits, const int32_t* labels, Head head, int32_t ignore_label,
                               Confusion& counts, unsigned long long* workspace, Stream stream) {
  const Shape& s = logits.shape;
  const int k = head_classes(head, s);
  if (counts.classes() != k)
    throw std::invalid_argument("confusion_accumulate_cuda: counts for " + std::to_string(counts.classes()) +
                                " classes, logits give " + std::to_string(k));
  std::vector<unsigned long long> host(static_cast<size_t>(3 * k + 1), 0);
  host.back() = ULLONG_MAX;
  UNET_CUDA_CHECK(cudaMemcpyAsync(workspace, host.data(), host.size() * sizeof(host[0]), cudaMemcpyHostToDevice,
                                  stream));
  const int64_t voxels = s.n * s.spatial();
  if (voxels > 0) {
    confusion_kernel<<<blocks_for(voxels), kThreads, 0, stream>>>(logits.data, labels, s.spatial(),
                                                                   logits.batch_stride, voxels, k,
                                                                   head == Head::sigmoid, ignore_label, workspace,
                                                                   workspace + k, workspace + 2 * k, workspace + 3 * k);
    UNET_CUDA_CHECK_LAUNCH();
  }
  UNET_CUDA_CHECK(cudaMemcpyAsync(host.data(), workspace, host.size() * sizeof(host[0]), cudaMemcpyDeviceToHost,
                                  stream));
  UNET_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (const unsigned long long bad = host.back(); bad != ULLONG_MAX) {
    int32_t label = 0;
    UNET_CUDA_CHECK(cudaMemcpy(&label, labels + bad, sizeof label, cudaMemcpyDeviceToHost));
    throw std::invalid_argument("label " + std::to_string(label) + " at voxel " + std::to_string(bad % s.spatial()) +
                                " of sample " + std::to_string(bad / s.spatial()) + " is outside the " +
                                std::to_string(k) + " classes");
  }
  for (int c = 0; c < k; ++c) {
    const int64_t tp = int64_t(host[c]), pred = int64_t(host[k + c]), lab = int64_t(host[2 * k + c]);
    counts.tp[c] += tp;
    counts.fp[c] += pred - tp;
    counts.fn[c] += lab - tp;
  }
}

}  // namespace unet
