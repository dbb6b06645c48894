// Choosing a cuDNN convolution algorithm, written without cuDNN's types so that
// the CPU tests test the rules conv.cu follows (tests/test_conv_choice.cpp).
//
// cuDNN ranks a pass's candidates, fastest first, each with a status, a
// determinism flag, a workspace size and the math type it must run with. We
// keep the whole ranking, not only its head: conv.cu validates the candidates
// in this order when the layer is planned (a workspace query with the pass's
// own descriptors) and falls to the next one when cuDNN declines the one it
// runs, as PyTorch does.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace unet {

// cuDNN 9 status codes carry a category in their thousands (CUDNN_STATUS_CATEGORY):
// 2000-2999 bad parameter, 3000-3999 not supported (3001-3014 name the reason).
constexpr int cudnn_category(int status) { return status / 1000 * 1000; }
// cuDNN declines the call for this configuration (another algorithm or the
// unfused path may serve), as opposed to failing (internal error, execution
// failed, out of memory), which is an error to report.
constexpr bool cudnn_declines(int status) {
  return cudnn_category(status) == 2000 || cudnn_category(status) == 3000;
}

struct ConvCandidate {
  int algo = 0;    // the pass's cudnnConvolution*Algo_t
  int status = 0;  // cuDNN's status for it (0: success)
  bool deterministic = true;
  int math = 0;          // the cudnnMathType_t to run it with
  size_t workspace = 0;  // bytes
  // CUDNN_TENSOR_OP_MATH (1) or its ALLOW_CONVERSION variant (2): tensor cores,
  // which on fp32 data means TF32.
  bool tensor_ops() const { return math == 1 || math == 2; }
};

struct ConvRanking {
  std::vector<ConvCandidate> order;  // to try, first to last
  bool deterministic = true;         // false: no deterministic candidate was usable
  std::string skipped;               // what was left out and why, for an error message
};

// The order to try a pass's candidates in: those cuDNN reported usable (and,
// with `strict_fp32`, without tensor cores), deterministic ones first: within
// `budget` bytes of workspace in cuDNN's order, then beyond it by workspace.
// Only where no deterministic candidate is usable, the nondeterministic ones
// (so that a layer cuDNN has no deterministic algorithm for still runs, as it
// would in PyTorch; `deterministic` then says so).
ConvRanking rank_candidates(const std::vector<ConvCandidate>& ranked, size_t budget, bool strict_fp32);

}  // namespace unet
