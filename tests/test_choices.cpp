// Every choice table: names unique, each value named once and found by its
// name, the messages listing the table; and the binary's options built from them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "engine/device/backend.h"
#include "engine/model/unet_config.h"
#include "engine/train/schedule.h"
#include "io/data/normalize.h"
#include "kernels/base/choice.h"
#include "kernels/loss.h"
#include "kernels/optimizer.h"
#include "tests/run_binary.h"

namespace unet {
namespace {

using ::testing::HasSubstr;

template <class T, size_t N>
void expect_round_trip(const Choice<T> (&table)[N], int values) {
  std::set<std::string> names;
  std::set<int> seen;
  for (const Choice<T>& c : table) {
    EXPECT_TRUE(names.insert(c.name).second) << c.name << " twice";
    EXPECT_TRUE(seen.insert(static_cast<int>(c.value)).second) << c.name << ": its value is named twice";
    EXPECT_EQ(choose(table, c.name, "x"), c.value);
    EXPECT_STREQ(choice_name(table, c.value), c.name);
    EXPECT_STRNE(c.help, "");
  }
  EXPECT_EQ(static_cast<int>(seen.size()), values) << "every value of the enum is in the table";
}

TEST(Choices, EveryTableNamesEachValueOnce) {
  expect_round_trip(kLossKinds, 8);
  expect_round_trip(kOptimizers, 3);
  expect_round_trip(kSchedules, 4);
  expect_round_trip(kPrecisions, 4);
  expect_round_trip(kNormChoices, 3);
  expect_round_trip(kPaddings, 2);
  expect_round_trip(kHeads, 2);
  expect_round_trip(kActivations, 3);
  expect_round_trip(kNormSchemes, 6);
}

TEST(Choices, AnUnknownNameListsTheTable) {
  EXPECT_THAT([] { choose(kOptimizers, "adagrad", "--optimizer"); },
              ::testing::ThrowsMessage<std::invalid_argument>(
                  HasSubstr("--optimizer adagrad: expected sgd, adam or adamw")));
  EXPECT_EQ(choice_names(kPaddings), "same or valid");
}

TEST(Choices, TheBinaryChecksAndExplainsFromTheTables) {
  const test::Result help = test::run_unet("train --help");
  EXPECT_EQ(help.status, 0);
  for (const Choice<LossKind>& c : kLossKinds) EXPECT_THAT(help.out, HasSubstr(std::string(c.name) + ": " + c.help));
  EXPECT_THAT(help.out, HasSubstr("poly: polynomial decay"));
  const test::Result bad = test::run_unet("train --schedule linear --steps 1");
  EXPECT_NE(bad.status, 0);
  EXPECT_THAT(bad.out, HasSubstr("--schedule: linear not in {constant,step,poly,cosine}"));
}

}  // namespace
}  // namespace unet
