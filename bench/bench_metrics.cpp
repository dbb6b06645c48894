// Confusion counts from logits (argmax) and labels: bytes/s.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/counters.h"
#include "kernels/metrics.h"

namespace unet {
namespace {

void BM_Confusion(benchmark::State& state) {
  const Shape s = shape3d(2, state.range(0), 64, 128, 128);
  const Head head = s.c == 1 ? Head::sigmoid : Head::softmax;
  std::vector<float> z(s.count());
  std::vector<int32_t> g(s.n * s.spatial());
  for (size_t i = 0; i < z.size(); ++i) z[i] = float(i % 11) - 5.f;
  const int classes = head_classes(head, s);
  for (size_t i = 0; i < g.size(); ++i) g[i] = int32_t(i % classes);
  for (auto _ : state) {
    Confusion c(classes);
    confusion_accumulate(Tensor(z.data(), s), g.data(), head, -1, c);
    benchmark::DoNotOptimize(c.tp.data());
  }
  bench::report_bytes(state, double(s.count()) * sizeof(float) + double(g.size()) * sizeof(int32_t));
}
BENCHMARK(BM_Confusion)->ArgName("channels")->Arg(1)->Arg(3)->UseRealTime();

}  // namespace
}  // namespace unet
