#include "io/data/fingerprint.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

#include "io/data/normalize.h"

namespace unet {

std::string orientation_codes(const std::array<double, 16>& affine) {
  std::string codes;
  for (int j = 0; j < 3; ++j) {  // column j: the world direction of voxel axis j
    int best = 0;
    for (int i = 1; i < 3; ++i)
      if (std::abs(affine[4 * i + j]) > std::abs(affine[4 * best + j])) best = i;
    codes += affine[4 * best + j] >= 0 ? "RAS"[best] : "LPI"[best];
  }
  return codes;
}

Fingerprint fingerprint_dataset(const Dataset& ds, const LabelSpec& labels, int workers) {
  Fingerprint f;
  f.channel_names = ds.channels;
  f.classes = ds.classes;
  f.cases.resize(ds.cases.size());
  // The foreground's intensities are those nnU-Net's CT scheme takes: the
  // normalization's own sampler collects them, 10,000 voxels per case.
  // Cases join it in the dataset's order, so that the figures do not depend on
  // which worker finished first.
  std::unique_ptr<NormalizationBuilder> intensities;
  std::mutex mutex;
  std::condition_variable turn;
  size_t added = 0;
  std::exception_ptr failure;
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next++) < ds.cases.size();) {
      try {
        CaseData data = load_case(ds.cases[i], labels);
        CaseFingerprint& c = f.cases[i];
        c.id = ds.cases[i].id;
        c.size = data.image.grid();
        c.spacing = data.image.spacing;
        c.orientation = orientation_codes(data.image.affine);
        c.class_voxels.assign(static_cast<size_t>(labels.classes), 0);
        for (int32_t v : data.label)
          if (v >= 0 && v < labels.classes) ++c.class_voxels[v];
        std::unique_lock<std::mutex> lock(mutex);
        turn.wait(lock, [&] { return added == i || failure; });
        if (failure) return;
        if (!intensities) {
          f.dims = data.image.dims;
          f.channels = data.image.c;
          intensities = std::make_unique<NormalizationBuilder>(
              std::vector<ChannelNorm>(static_cast<size_t>(data.image.c), ChannelNorm{NormScheme::ct}));
        }
        if (data.image.c != f.channels)
          throw FileError(ds.cases[i].images[0] + ": " + std::to_string(data.image.c) + " channels where the first case has " +
                          std::to_string(f.channels));
        intensities->add(data.image, data.label.empty() ? nullptr : data.label.data());
        ++added;
        turn.notify_all();
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!failure) failure = std::current_exception();
        next = ds.cases.size();
        turn.notify_all();
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::max(1, workers); ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
  if (!intensities) throw FileError(ds.source + ": no case to fingerprint");
  for (const ChannelNorm& n : intensities->finish().channels) f.foreground.push_back({n.mean, n.std, n.lo, n.hi});
  return f;
}

nlohmann::json to_json(const Fingerprint& f) {
  nlohmann::json cases = nlohmann::json::array();
  for (const CaseFingerprint& c : f.cases)
    cases.push_back({{"id", c.id},
                     {"size_dhw", c.size},
                     {"spacing_xyz", c.spacing},
                     {"orientation", c.orientation},
                     {"class_voxels", c.class_voxels}});
  nlohmann::json fg = nlohmann::json::array();
  for (const ForegroundIntensity& i : f.foreground)
    fg.push_back({{"mean", i.mean}, {"std", i.std}, {"percentile_00_5", i.p00_5}, {"percentile_99_5", i.p99_5}});
  return {{"dims", f.dims},           {"channels", f.channels}, {"channel_names", f.channel_names},
          {"classes", f.classes},     {"cases", cases},         {"foreground_intensity", fg}};
}

}  // namespace unet
