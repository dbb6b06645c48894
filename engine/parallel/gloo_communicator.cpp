// The Communicator over Gloo (Debian libgloo-dev): TCP between processes, the
// rendezvous through gloo::rendezvous::FileStore on a shared folder.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>

#include "engine/parallel/communicator.h"

namespace unet {
namespace {

// Gloo splits nothing above this on its own; big buffers go in pieces so that
// a tag's buffers stay modest.
constexpr int64_t kPiece = int64_t(1) << 24;

class GlooCommunicator final : public Communicator {
 public:
  GlooCommunicator(const RankInfo& who, const std::string& store_dir, const std::string& host) {
    // Where the others reach this rank: `host`, else the interface named by
    // GLOO_SOCKET_IFNAME (as PyTorch reads it: for nodes whose host name
    // resolves to loopback or to the wrong network), else this host's name.
    std::string address = host;
    const char* iface = std::getenv("GLOO_SOCKET_IFNAME");
    gloo::transport::tcp::attr attr;
    if (address.empty() && iface && *iface) {
      attr.iface = iface;
      address = std::string("interface ") + iface;
    } else {
      if (address.empty()) {
        char name[256] = {};
        ::gethostname(name, sizeof name - 1);
        address = name;
      }
      attr.hostname = address;
    }
    try {
      std::filesystem::create_directories(store_dir);
      device_ = gloo::transport::tcp::CreateDevice(attr);
      gloo::rendezvous::FileStore store(store_dir);
      auto ctx = std::make_shared<gloo::rendezvous::Context>(who.rank, who.world);
      ctx->setTimeout(std::chrono::minutes(30));  // rank 0 validates while the others wait
      ctx->connectFullMesh(store, device_);
      context_ = ctx;
    } catch (const std::exception& e) {
      throw std::runtime_error("rank " + std::to_string(who.rank) + " of " + std::to_string(who.world) +
                               ": could not join the others through " + store_dir + " as " + address + " (" +
                               e.what() + "); a rank that never started shows as a timeout");
    }
  }

  int rank() const override { return context_->rank; }
  int world() const override { return context_->size; }

  void all_reduce_sum(float* data, int64_t count) override { reduce(data, count); }
  void all_reduce_sum(double* data, int64_t count) override { reduce(data, count); }

  void broadcast(float* data, int64_t count, int root) override {
    collective("broadcast", [&] {
      for (int64_t b = 0; b < count; b += kPiece) {
        gloo::BroadcastOptions o(context_);
        o.setOutput(data + b, static_cast<size_t>(std::min(kPiece, count - b)));
        o.setRoot(root);
        o.setTag(tag_++);
        gloo::broadcast(o);
      }
    });
  }

  void barrier() override {
    collective("barrier", [&] {
      gloo::BarrierOptions o(context_);
      o.setTag(tag_++);
      gloo::barrier(o);
    });
  }

 private:
  template <class T>
  void reduce(T* data, int64_t count) {
    collective("all-reduce", [&] {
      for (int64_t b = 0; b < count; b += kPiece) {
        gloo::AllreduceOptions o(context_);
        o.setOutput(data + b, static_cast<size_t>(std::min(kPiece, count - b)));
        o.setReduceFunction(static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<T>));
        o.setTag(tag_++);
        gloo::allreduce(o);
      }
    });
  }

  // A peer that died (killed, crashed, out of memory) closes its connections:
  // the collective fails at once, and the message says that a rank is gone
  // (which one: the one two ranks share, else the job's log, where the
  // launcher names it).
  template <class F>
  void collective(const char* what, F run) {
    try {
      run();
    } catch (const std::exception& e) {
      const int me = context_->rank, world = context_->size;
      const std::string peer = world == 2 ? "rank " + std::to_string(1 - me) : "another rank";
      throw std::runtime_error("rank " + std::to_string(me) + " of " + std::to_string(world) + ": " + what +
                               " failed: " + peer + " is gone (ended, killed or unreachable; its log or the "
                               "launcher says how) (" + e.what() + ")");
    }
  }

  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::Context> context_;
  uint32_t tag_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_gloo_communicator(const RankInfo& who, const std::string& store_dir,
                                                     const std::string& host) {
  return std::make_unique<GlooCommunicator>(who, store_dir, host);
}

}  // namespace unet
