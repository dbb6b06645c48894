#include "engine/parallel/communicator.h"

#include <cstdlib>
#include <stdexcept>

namespace unet {
namespace {

// The variable's integer value, `fallback` when unset.
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end || x < 0 || x > 1 << 20)
    throw std::invalid_argument(std::string("environment variable ") + name + "=\"" + v +
                                "\": expected a non-negative integer");
  return static_cast<int>(x);
}

std::string env_text(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  void all_reduce_sum(float*, int64_t) override {}
  void all_reduce_sum(double*, int64_t) override {}
  void broadcast(float*, int64_t, int) override {}
  void barrier() override {}
};

}  // namespace

RankInfo rank_info_from_environment() {
  RankInfo r;
  const bool slurm = std::getenv("SLURM_PROCID") && std::getenv("SLURM_NTASKS");
  const char* rank = slurm ? "SLURM_PROCID" : "RANK";
  const char* world = slurm ? "SLURM_NTASKS" : "WORLD_SIZE";
  r.rank = env_int(rank, 0);
  r.world = env_int(world, 1);
  r.local_rank = env_int(slurm ? "SLURM_LOCALID" : "LOCAL_RANK", 0);
  if (r.world < 1 || r.rank >= r.world)
    throw std::invalid_argument(std::string(rank) + "=" + std::to_string(r.rank) + " is outside " + world + "=" +
                                std::to_string(r.world));
  if (slurm) {
    // A requeued job keeps its id; its restart count tells the rendezvous apart.
    r.job = "slurm-" + env_text("SLURM_JOB_ID") + "-" + env_text("SLURM_STEP_ID") + "-" +
            (env_text("SLURM_RESTART_COUNT").empty() ? "0" : env_text("SLURM_RESTART_COUNT"));
  } else {
    r.job = env_text("UNET_JOB_ID");
  }
  return r;
}

std::unique_ptr<Communicator> make_single_process_communicator() { return std::make_unique<SingleProcess>(); }

}  // namespace unet
