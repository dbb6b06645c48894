#include "engine/device/cuda_graph.h"

#include <cstdio>
#include <exception>
#include <string>

#ifdef UNET_CUDA
#include "kernels/base/cuda_check.h"
#endif

namespace unet {

CudaGraph::~CudaGraph() { forget(); }

void CudaGraph::forget() {
#ifdef UNET_CUDA
  if (exec_) UNET_CUDA_CHECK_NOTHROW(cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_)));
#endif
  exec_ = nullptr;
  warmed_ = false;
}

#ifndef UNET_CUDA
void CudaGraph::run(Backend&, const std::function<void()>& ops) { ops(); }
#else
void CudaGraph::run(Backend& be, const std::function<void()>& ops) {
  CudaGraphState& state = be.graphs();
  if (!be.is_cuda() || !state.enabled || state.capturing) return ops();  // inside a capture: part of the outer graph
  if (generation_ != state.generation) forget(), generation_ = state.generation;
  const cudaStream_t stream = be.stream();
  if (exec_) {
    UNET_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), stream));
    ++state.replays;
    return;
  }
  if (!warmed_) {
    warmed_ = true;
    return ops();
  }
  // Thread-local: the loader's threads may call CUDA meanwhile (page-locked buffers).
  UNET_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  std::string failure;
  state.capturing = true;
  try {
    ops();  // recorded, not run
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "an exception";
  }
  state.capturing = false;
  cudaGraph_t graph = nullptr;
  cudaError_t err = cudaStreamEndCapture(stream, &graph);
  cudaGraphExec_t exec = nullptr;
  if (failure.empty() && err == cudaSuccess) err = cudaGraphInstantiate(&exec, graph, 0);
  if (graph) cudaGraphDestroy(graph);
  if (failure.empty() && err != cudaSuccess) failure = cudaGetErrorString(err);
  if (!failure.empty()) {
    cudaGetLastError();  // capture errors are not sticky: clear them
    // Run it eagerly, graphs off (the passes inside it would try their own
    // captures); an error of the ops themselves throws from here, and then
    // graphs go back on: only ops that run but cannot be captured turn them off.
    state.enabled = false;
    try {
      ops();
    } catch (...) {
      state.enabled = true;
      throw;
    }
    std::fprintf(stderr, "unet: CUDA Graph capture failed (%s); running the passes without graphs\n",
                 failure.c_str());
    return;
  }
  exec_ = exec;
  UNET_CUDA_CHECK(cudaGraphLaunch(exec, stream));
  ++state.replays;
}
#endif

}  // namespace unet
