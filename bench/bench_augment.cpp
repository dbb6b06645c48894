// The data pipeline's throughput in samples/s, on the real datasets: reading
// (+ label conversion + normalization), patching + augmentation from memory,
// and both, for ISBI 2012 slices (512x512, 2D) and lung CT volumes
// (128x128x64, 3D), on 1 thread and on every hardware thread. Each thread makes
// its own samples, as loader workers do. Skipped when ../shared/datasets is absent.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <mutex>
#include <thread>

#include "io/data/augment.h"
#include "io/data/dataset.h"

namespace unet {
namespace {

const std::string kShared = UNET_SOURCE_DIR "/../shared/datasets";

struct Source {
  std::string missing;  // why it cannot run, or empty
  std::vector<Case> cases;
  LabelSpec labels;
  NormalizationStats norm;
  PatchSpec patch;
  std::vector<Sample> loaded;  // every case, read once, for the in-memory benchmarks
};

Source make_isbi() {
  Source s;
  const std::string root = kShared + "/isbi2012/train";
  if (!std::filesystem::is_directory(root)) return s.missing = root + " is absent", s;
  s.cases = open_folders(root).cases;
  s.labels.map = parse_label_map("0:1,255:0");  // membrane is the foreground
  s.norm.channels = {ChannelNorm{NormScheme::zscore}};
  s.patch.size = {1, 512, 512};
  return s;
}

Source make_lung() {
  Source s;
  const std::string root = kShared + "/lung3d";
  if (!std::filesystem::is_directory(root)) return s.missing = root + " is absent", s;
  for (int i = 1; i <= 4; ++i) {
    const std::string id = "id00" + std::to_string(i) + "-128x128x64";
    s.cases.push_back(Case{id, {root + "/" + id + ".nii.gz"}, root + "/" + id + "-msk.nii.gz"});
  }
  s.labels.binarize = true;  // interpolated masks: threshold at 127.5
  ChannelNorm ct{NormScheme::window};
  ct.lo = -1000, ct.hi = 400;
  s.norm.channels = {ct};
  s.patch.size = {64, 128, 128};
  return s;
}

Source& source(bool lung) {
  static std::once_flag once[2];
  static Source sources[2];
  std::call_once(once[lung], [&] {
    Source& s = sources[lung] = lung ? make_lung() : make_isbi();
    for (const Case& c : s.cases) s.loaded.push_back(to_sample(load_case(c, s.labels), s.norm));
  });
  return sources[lung];
}

enum Stage { kRead = 1, kAugment = 2 };

void run(benchmark::State& state, bool lung, int stages) {
  const Source& src = source(lung);
  if (!src.missing.empty()) {
    state.SkipWithError((src.missing + " (see datasets/ for how to fetch it)").c_str());
    return;
  }
  AugmentSpec aug;  // nnU-Net's defaults
  const int64_t n = static_cast<int64_t>(src.cases.size());
  int64_t i = state.thread_index() * 1000003;  // threads make different samples
  for (auto _ : state) {
    const int64_t k = i % n;
    Sample s = stages & kRead ? to_sample(load_case(src.cases[k], src.labels), src.norm) : src.loaded[k];
    if (stages & kAugment) {
      auto rng = sample_rng(1, 0, i);
      s = extract_patch(s, src.patch, rng);
      augment(s, aug, rng);
    }
    benchmark::DoNotOptimize(s.image.data());
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}

void all_threads(benchmark::internal::Benchmark* b) {
  b->Threads(1);
  if (const int n = static_cast<int>(std::thread::hardware_concurrency()); n > 1) b->Threads(n);
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK_CAPTURE(run, isbi_read, false, kRead)->Apply(all_threads);
BENCHMARK_CAPTURE(run, isbi_augment, false, kAugment)->Apply(all_threads);
BENCHMARK_CAPTURE(run, isbi_read_augment, false, kRead | kAugment)->Apply(all_threads);
BENCHMARK_CAPTURE(run, lung_read, true, kRead)->Apply(all_threads);
BENCHMARK_CAPTURE(run, lung_augment, true, kAugment)->Apply(all_threads);
BENCHMARK_CAPTURE(run, lung_read_augment, true, kRead | kAugment)->Apply(all_threads);

}  // namespace
}  // namespace unet
