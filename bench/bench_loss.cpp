// Fused head + loss (forward and gradient in one call): bytes/s over logits,
// labels and the gradient.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench/counters.h"
#include "kernels/loss.h"

namespace unet {
namespace {

void BM_Loss(benchmark::State& state) {
  const bool sigmoid_head = state.range(0) == 1;
  const Shape s = shape2d(8, sigmoid_head ? 1 : 4, 256, 256);
  const LossSpec spec = make_loss(state.range(1) ? LossKind::dice_ce : (sigmoid_head ? LossKind::bce : LossKind::ce),
                                  sigmoid_head ? Head::sigmoid : Head::softmax);
  std::vector<float> z(s.count()), dz(z.size());
  std::vector<int32_t> g(s.n * s.spatial());
  for (size_t i = 0; i < z.size(); ++i) z[i] = float(i % 13) * 0.1f - 0.6f;
  for (size_t i = 0; i < g.size(); ++i) g[i] = int32_t(i % (sigmoid_head ? 2 : 4));
  for (auto _ : state) {
    benchmark::DoNotOptimize(loss_forward_backward(Tensor(z.data(), s), g.data(), Tensor(dz.data(), s), spec));
  }
  // logits read once, gradient written and re-read, labels read twice
  bench::report_bytes(state, 3.0 * double(s.count()) * sizeof(float) + 2.0 * double(g.size()) * sizeof(int32_t));
}
BENCHMARK(BM_Loss)->ArgNames({"classes1", "dice_ce"})->ArgsProduct({{1, 4}, {0, 1}})->UseRealTime();

}  // namespace
}  // namespace unet
