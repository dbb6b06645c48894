// Finite-difference gradient checking for the CPU ops (after Caffe's checker).
//
// For each input element x_i the objective is evaluated at x_i + h and x_i - h
// (float ops, objective accumulated in double) and the central difference
// (f+ - f-) / 2h is compared with the analytic gradient:
//   |analytic - numeric| <= tolerance * max(|analytic|, |numeric|, 1).
// Elements whose perturbation would cross a kink (ReLU at 0, a max-pool tie)
// are skipped through the input's `near_kink` predicate; the checker fails if
// it skipped so many that the check would say little.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/base/tensor.h"

namespace unet::test {

struct GradInput {
  std::string name;
  std::vector<float>* values;              // perturbed in place, restored after
  const std::vector<float>* analytic;      // dObjective/dvalues, same size
  std::function<bool(int64_t)> near_kink;  // optional: skip this element
};

struct GradCheckOptions {
  double step = 1e-2;
  double tolerance = 2e-3;
  int64_t max_checks = 300;   // per input; a random subset beyond that
  double max_skipped = 0.5;   // fraction of checked elements allowed to be kinks
  // Fraction allowed to differ. 0 for single ops, whose kinks near_kink finds; a
  // whole network's ReLU and max-pool kinks cannot be predicted per parameter, so
  // its check allows the few elements whose perturbation crosses one. A wrong
  // layer still fails: its elements differ nearly all at once.
  double max_failed = 0.0;
  // Differences are relative to max(|analytic|, |numeric|, floor): below the floor
  // they are judged absolutely, since float rounding in the objective limits what
  // a difference quotient can resolve.
  double floor = 1.0;
};

// Classes 0..classes-1 for every voxel of `out`'s samples, reproducible from seed.
inline std::vector<int32_t> labels_for(const Shape& out, int classes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> g(out.n * out.spatial());
  for (auto& v : g) v = int32_t(rng() % uint64_t(classes));
  return g;
}

inline std::vector<float> random_vector(int64_t n, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = u(rng);
  return v;
}

// sum_i r_i * y_i in double: the objective whose gradient with respect to y is r.
inline double dot(const std::vector<float>& r, const float* y) {
  double s = 0;
  for (size_t i = 0; i < r.size(); ++i) s += double(r[i]) * double(y[i]);
  return s;
}

inline void expect_gradients(const std::function<double()>& objective,
                             const std::vector<GradInput>& inputs,
                             const GradCheckOptions& opt = {}) {
  std::mt19937_64 rng(1234);
  for (const GradInput& in : inputs) {
    auto& x = *in.values;
    ASSERT_EQ(x.size(), in.analytic->size()) << in.name;
    const int64_t n = static_cast<int64_t>(x.size());
    std::vector<int64_t> idx(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
    if (n > opt.max_checks) {
      std::shuffle(idx.begin(), idx.end(), rng);
      idx.resize(static_cast<size_t>(opt.max_checks));
    }
    int64_t skipped = 0, failures = 0;
    std::string first;  // the first few differences, reported if there are too many
    for (int64_t i : idx) {
      if (in.near_kink && in.near_kink(i)) {
        ++skipped;
        continue;
      }
      const float saved = x[static_cast<size_t>(i)];
      x[static_cast<size_t>(i)] = static_cast<float>(saved + opt.step);
      const double plus = objective();
      x[static_cast<size_t>(i)] = static_cast<float>(saved - opt.step);
      const double minus = objective();
      x[static_cast<size_t>(i)] = saved;
      const double numeric = (plus - minus) / (2 * opt.step);
      const double analytic = (*in.analytic)[static_cast<size_t>(i)];
      const double scale = std::max({std::fabs(analytic), std::fabs(numeric), opt.floor});
      if (std::fabs(analytic - numeric) > opt.tolerance * scale && ++failures <= 5)
        first += "\n  " + in.name + "[" + std::to_string(i) + "]: analytic " + std::to_string(analytic) +
                 ", numeric " + std::to_string(numeric);
    }
    EXPECT_LE(failures, opt.max_failed * static_cast<double>(idx.size()))
        << in.name << ": " << failures << " of " << idx.size() << " elements differ:" << first;
    EXPECT_LE(skipped, opt.max_skipped * static_cast<double>(idx.size()))
        << in.name << ": too many elements near a kink to say anything";
  }
}

}  // namespace unet::test
