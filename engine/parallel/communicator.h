// Data parallelism's collectives behind one interface: Gloo for CPU processes
// (here), NCCL for GPUs (the CUDA backend). One process per rank; every rank
// calls the same collectives in the same order.
//
// Who is who comes from the launcher: Slurm's SLURM_PROCID / SLURM_NTASKS /
// SLURM_LOCALID (srun), else RANK / WORLD_SIZE / LOCAL_RANK (torchrun and
// friends), else a single process. The ranks find each other through Gloo's
// FileStore: a folder on the job's shared filesystem that every rank can reach
// (the run folder, normally), with one subfolder per job and restart so that a
// requeued job never meets its predecessor's files.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#ifdef UNET_CUDA
#include <cuda_runtime.h>
#endif

namespace unet {

struct RankInfo {
  int rank = 0, world = 1, local_rank = 0;
  std::string job;  // names this job's rendezvous: Slurm job id + restart count, or UNET_JOB_ID
};

// From the environment; throws std::invalid_argument naming the variable when
// one is set but unusable (not a number, rank outside the world).
RankInfo rank_info_from_environment();

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // In place: every rank ends with the element-wise sum over ranks.
  virtual void all_reduce_sum(float* data, int64_t count) = 0;
  virtual void all_reduce_sum(double* data, int64_t count) = 0;
  // Every rank ends with root's values.
  virtual void broadcast(float* data, int64_t count, int root) = 0;
  virtual void barrier() = 0;
};

// One process: every collective is the identity.
std::unique_ptr<Communicator> make_single_process_communicator();

// Gloo over TCP. `store_dir` is the shared folder for the rendezvous (created
// when missing); the other ranks reach this one at `host` when given, else on
// the interface GLOO_SOCKET_IFNAME names, else at this host's name. Throws std::runtime_error saying what failed, with the
// hint that a rank that never came would show as a timeout.
std::unique_ptr<Communicator> make_gloo_communicator(const RankInfo& who, const std::string& store_dir,
                                                     const std::string& host = "");

#ifdef UNET_CUDA
// NCCL, one GPU per rank: the buffers are device memory, the collectives run on
// `stream` and return when it has finished them. The unique id travels from
// rank 0 through Gloo's FileStore in `store_dir`.
std::unique_ptr<Communicator> make_nccl_communicator(const RankInfo& who, const std::string& store_dir,
                                                     cudaStream_t stream);
#endif

}  // namespace unet
