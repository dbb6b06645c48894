#include "io/data/synthetic.h"

#include <gtest/gtest.h>
#include <omp.h>

namespace unet {
namespace {

struct Stats {
  double membrane_fraction, membrane_mean, interior_mean;
};

Stats stats(const Volume& image, const Volume& label) {
  double m = 0, mi = 0, ii = 0;
  for (size_t i = 0; i < label.voxels.size(); ++i) {
    const bool mem = label.voxels[i] > 127.5f;
    m += mem;
    (mem ? mi : ii) += image.voxels[i];
  }
  const double n = double(label.voxels.size());
  return {m / n, mi / m, ii / (n - m)};
}

TEST(Synthetic, MembranesAreDarkLabelledAndAPlausibleFraction) {
  for (int dims : {2, 3}) {
    SyntheticSpec spec;
    spec.dims = dims;
    spec.size = dims == 2 ? 128 : 32;
    spec.cells = dims == 2 ? 40 : 20;
    const auto [image, label] = synthetic_em(spec, 3);
    EXPECT_EQ(image.count(), dims == 2 ? 128 * 128 : 32 * 32 * 32);
    EXPECT_EQ(image.dims, dims);
    for (float v : label.voxels) ASSERT_TRUE(v == 0.f || v == 255.f);
    for (float v : image.voxels) ASSERT_TRUE(v >= 0.f && v <= 255.f);
    const Stats s = stats(image, label);
    EXPECT_GT(s.membrane_fraction, 0.08) << dims << "D";
    EXPECT_LT(s.membrane_fraction, 0.45) << dims << "D";
    EXPECT_LT(s.membrane_mean + 40, s.interior_mean) << dims << "D";
  }
}

TEST(Synthetic, SameSeedAndIndexSameImageWhateverTheThreads) {
  SyntheticSpec spec;
  spec.seed = 7;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto a = synthetic_em(spec, 2);
  omp_set_num_threads(std::max(2, saved));
  const auto b = synthetic_em(spec, 2);
  omp_set_num_threads(saved);
  EXPECT_EQ(a.first.voxels, b.first.voxels);
  EXPECT_EQ(a.second.voxels, b.second.voxels);
  const auto c = synthetic_em(spec, 3);
  EXPECT_NE(a.second.voxels, c.second.voxels);
}

TEST(Synthetic, RejectsNonsense) {
  SyntheticSpec spec;
  spec.size = 4;
  EXPECT_THROW(synthetic_em(spec, 0), std::invalid_argument);
}

}  // namespace
}  // namespace unet
