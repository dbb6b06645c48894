#include "kernels/conv_choice.h"

#include <algorithm>

namespace unet {

ConvRanking rank_candidates(const std::vector<ConvCandidate>& ranked, size_t budget, bool strict_fp32) {
  ConvRanking r;
  std::vector<ConvCandidate> within, beyond, nondeterministic;
  for (const ConvCandidate& c : ranked) {
    const std::string name = "algorithm " + std::to_string(c.algo);
    if (c.status != 0) {
      r.skipped += name + ": status " + std::to_string(c.status) + "; ";
    } else if (strict_fp32 && c.tensor_ops()) {
      r.skipped += name + ": tensor cores (strict fp32); ";
    } else if (!c.deterministic) {
      nondeterministic.push_back(c);
    } else {
      (c.workspace <= budget ? within : beyond).push_back(c);
    }
  }
  std::stable_sort(beyond.begin(), beyond.end(),
                   [](const ConvCandidate& a, const ConvCandidate& b) { return a.workspace < b.workspace; });
  r.order = within;
  r.order.insert(r.order.end(), beyond.begin(), beyond.end());
  if (r.order.empty()) {
    r.order = nondeterministic;
    r.deterministic = nondeterministic.empty();
  } else {
    for (const ConvCandidate& c : nondeterministic)
      r.skipped += "algorithm " + std::to_string(c.algo) + ": nondeterministic; ";
  }
  return r;
}

}  // namespace unet
