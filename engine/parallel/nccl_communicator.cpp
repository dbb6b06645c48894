// The Communicator over NCCL, for ranks that each drive one GPU: the buffers
// are device memory, the collectives run on the caller's stream and return
// when it has finished them. The NCCL unique id goes from rank 0 to the others
// through Gloo's FileStore in the shared rendezvous folder (no server of ours).
#include <cuda_runtime.h>
#include <nccl.h>

#include <filesystem>
#include <gloo/rendezvous/file_store.h>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/parallel/communicator.h"
#include "kernels/base/cuda_check.h"

namespace unet {
namespace {

#define UNET_NCCL(call)                                                                             \
  do {                                                                                              \
    ncclResult_t unet_err_ = (call);                                                                \
    if (unet_err_ != ncclSuccess)                                                                   \
      ::unet::throw_cuda_error("NCCL", ncclGetErrorString(unet_err_), #call, __FILE__, __LINE__);   \
  } while (0)

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const RankInfo& who, const std::string& store_dir, cudaStream_t stream) : stream_(stream) {
    ncclUniqueId id;
    std::filesystem::create_directories(store_dir);
    gloo::rendezvous::FileStore store(store_dir);
    if (who.rank == 0) {
      UNET_NCCL(ncclGetUniqueId(&id));
      store.set("nccl_unique_id", std::vector<char>(id.internal, id.internal + sizeof id.internal));
    } else {
      store.wait({"nccl_unique_id"});
      const std::vector<char> bytes = store.get("nccl_unique_id");
      if (bytes.size() != sizeof id.internal)
        throw std::runtime_error(store_dir + ": the NCCL unique id has " + std::to_string(bytes.size()) +
                                 " bytes, expected " + std::to_string(sizeof id.internal));
      std::copy(bytes.begin(), bytes.end(), id.internal);
    }
    UNET_CUDA_CHECK(cudaGetDevice(&device_));
    UNET_NCCL(ncclCommInitRank(&comm_, who.world, id, who.rank));
    UNET_CUDA_CHECK(cudaMalloc(&token_, sizeof(float)));
    rank_ = who.rank, world_ = who.world;
  }
  ~NcclCommunicator() override {
    UNET_CUDA_CHECK_NOTHROW(cudaFree(token_));
    ncclCommDestroy(comm_);
  }

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  void all_reduce_sum(float* data, int64_t count) override { reduce(data, count, ncclFloat32); }
  void all_reduce_sum(double* data, int64_t count) override { reduce(data, count, ncclFloat64); }
  void broadcast(float* data, int64_t count, int root) override {
    UNET_CUDA_CHECK(cudaSetDevice(device_));
    UNET_NCCL(ncclBroadcast(data, data, static_cast<size_t>(count), ncclFloat32, root, comm_, stream_));
    UNET_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void barrier() override { reduce(token_, 1, ncclFloat32); }  // nobody passes until everybody has come

 private:
  // The gradient reducer calls from its own thread, whose current device is
  // not necessarily this rank's.
  void reduce(void* data, int64_t count, ncclDataType_t type) {
    UNET_CUDA_CHECK(cudaSetDevice(device_));
    UNET_NCCL(ncclAllReduce(data, data, static_cast<size_t>(count), type, ncclSum, comm_, stream_));
    UNET_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_;
  float* token_ = nullptr;  // the barrier's all-reduce
  int rank_ = 0, world_ = 1, device_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const RankInfo& who, const std::string& store_dir,
                                                     cudaStream_t stream) {
  return std::make_unique<NcclCommunicator>(who, store_dir, stream);
}

}  // namespace unet
