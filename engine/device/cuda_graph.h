// A fixed sequence of ops on fixed buffers (a pass of a planned net, a whole
// training step), run as a CUDA Graph: eagerly the first time (cuDNN's and
// cuBLAS's first-use work then happens outside a capture), captured the
// second, replayed after: one launch instead of hundreds. Owned by what runs
// the sequence, one per set of buffers it reads (the two staging buffers a net
// alternates, a caller's own input): CudaGraphs below keeps them by those
// buffers. The backend's graph generation (CudaGraphState) moves when buffers
// a graph may name go (a net planned again, the reduction scratch grown): each
// graph then runs eagerly and captures again.
//
// A graph run inside another's ops is part of the outer one. A capture that
// fails is reported once and graphs go off for the backend; an error of the
// ops themselves still throws. Off the GPU, or with graphs off, run() runs the
// ops.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <tuple>

#include "engine/device/backend.h"

namespace unet {

class CudaGraph {
 public:
  CudaGraph() = default;
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  void run(Backend& be, const std::function<void()>& ops);

 private:
  void forget();
  void* exec_ = nullptr;  // cudaGraphExec_t
  bool warmed_ = false;   // run once eagerly in this generation
  int64_t generation_ = -1;
};

// The graphs of one sequence, one per set of buffers it reads: a pointer, a
// stride and another pointer (the input, its batch stride, the labels).
class CudaGraphs {
 public:
  using Buffers = std::tuple<const void*, int64_t, const void*>;
  CudaGraph& operator[](const Buffers& buffers) { return graphs_[buffers]; }
  void clear() { graphs_.clear(); }

 private:
  std::map<Buffers, CudaGraph> graphs_;
};

}  // namespace unet
