// The order in which conv.cu tries cuDNN's convolution algorithms, and which
// cuDNN statuses count as "declined" (another algorithm, or the unfused
// convolution, may serve) rather than as errors. Plain host code: what the
// CUDA backend decides is checked here, where no GPU runs.
#include <gtest/gtest.h>

#include <vector>

#include "kernels/conv_choice.h"

namespace unet {
namespace {

std::vector<int> algos(const ConvRanking& r) {
  std::vector<int> a;
  for (const ConvCandidate& c : r.order) a.push_back(c.algo);
  return a;
}

TEST(CudnnStatus, EverySubCodeOfBadParameterAndNotSupportedDeclines) {
  // cuDNN 9 answers with sub-codes: 3001-3014 for "not supported", 2001-... for
  // bad parameters (a strided channel slice may get one from the fused call).
  for (int s : {2000, 2001, 2002, 2009, 3000, 3001, 3007, 3014}) EXPECT_TRUE(cudnn_declines(s)) << s;
  // Success, internal errors, failed executions and allocation failures do not.
  for (int s : {0, 1001, 4000, 4001, 5000, 5003}) EXPECT_FALSE(cudnn_declines(s)) << s;
  EXPECT_EQ(cudnn_category(3014), 3000);
}

TEST(ConvRanking, KeepsCudnnsOrderOfTheDeterministicOnesWithinTheBudget) {
  const auto r = rank_candidates({{5, 0, true, 0, 100}, {1, 0, true, 0, 10}, {7, 0, true, 0, 0}}, 1000,
                                 false);
  EXPECT_EQ(algos(r), (std::vector<int>{5, 1, 7}));
  EXPECT_TRUE(r.deterministic);
}

TEST(ConvRanking, PutsThoseBeyondTheBudgetLastSmallestFirst) {
  const auto r = rank_candidates(
      {{1, 0, true, 0, 5000}, {2, 0, true, 0, 100}, {3, 0, true, 0, 2000}, {4, 0, true, 0, 50}}, 1000,
      false);
  EXPECT_EQ(algos(r), (std::vector<int>{2, 4, 3, 1}));
}

TEST(ConvRanking, LeavesOutFailedNondeterministicAndInStrictFp32TensorCoreCandidates) {
  const std::vector<ConvCandidate> c{{1, 3000, true, 0, 0},   // cuDNN: not supported here
                                     {2, 0, false, 0, 0},     // nondeterministic
                                     {3, 0, true, 1, 0},       // tensor cores (TF32 on fp32 data)
                                     {4, 0, true, 0, 0}};
  const auto strict = rank_candidates(c, 1000, true);
  EXPECT_EQ(algos(strict), (std::vector<int>{4}));
  EXPECT_NE(strict.skipped.find("algorithm 1: status 3000"), std::string::npos) << strict.skipped;
  EXPECT_NE(strict.skipped.find("algorithm 2: nondeterministic"), std::string::npos) << strict.skipped;
  EXPECT_NE(strict.skipped.find("algorithm 3: tensor cores"), std::string::npos) << strict.skipped;
  EXPECT_EQ(algos(rank_candidates(c, 1000, false)), (std::vector<int>{3, 4}));  // tf32, bf16, fp16
}

TEST(ConvRanking, FallsBackToNondeterministicOnesOnlyWhereNoDeterministicOneIsUsable) {
  // A 3D bf16 backward-filter pass may have no deterministic algorithm: the
  // layer still runs, and the ranking says it will not repeat bit for bit.
  const auto r = rank_candidates({{0, 0, false, 0, 10}, {1, 3001, true, 0, 0}, {3, 0, false, 0, 20}},
                                 1000, false);
  EXPECT_EQ(algos(r), (std::vector<int>{0, 3}));
  EXPECT_FALSE(r.deterministic);
}

TEST(ConvRanking, IsEmptyWhenNothingIsUsableAndSaysWhy) {
  const auto r = rank_candidates({{6, 3000, true, 0, 0}}, 1000, false);
  EXPECT_TRUE(r.order.empty());
  EXPECT_EQ(r.skipped, "algorithm 6: status 3000; ");
}

}  // namespace
}  // namespace unet
