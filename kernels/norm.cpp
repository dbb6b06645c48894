#include "kernels/norm.h"

#include <cmath>

#include "kernels/base/parallel.h"

namespace unet {
namespace {

// A group's elements are the planes (n, c) for n in [n0, n1): all samples of a
// channel for batch norm, one sample's channel for instance norm.
struct Group {
  int64_t n0, n1, c;
};

Group group(NormKind kind, const Shape& s, int64_t g) {
  if (kind == NormKind::batch) return {0, s.n, g};
  return {g / s.c, g / s.c + 1, g % s.c};
}

// Sums f(plane, i) over a group, in fixed chunks (deterministic, see parallel.h).
template <class F>
double group_sum(const Tensor& t, Group g, F f) {
  double total = 0;
  for (int64_t n = g.n0; n < g.n1; ++n) {
    const float* p = t.channel(n, g.c);
    const int64_t plane = n - g.n0;
    total += deterministic_sum(t.shape.spatial(), [&](int64_t b, int64_t e) {
      double s = 0;
      for (int64_t i = b; i < e; ++i) s += f(p, plane, i);
      return s;
    });
  }
  return total;
}

// y = gamma * (x - mean) * invstd + beta over one group.
void normalize(const Tensor& x, const Tensor& y, Group g, float mean, float invstd, float gamma, float beta) {
  const float scale = gamma * invstd, shift = beta - mean * scale;
  for (int64_t n = g.n0; n < g.n1; ++n) {
    const float* px = x.channel(n, g.c);
    float* py = y.channel(n, g.c);
    for (int64_t i = 0; i < x.shape.spatial(); ++i) py[i] = norm_apply(px[i], scale, shift);
  }
}

}  // namespace

// Two passes, each a parallel sum per group and then, for synchronized batch
// norm, one reduction over ranks: the mean, then the centred sum of squares.
void norm_forward_train(const Tensor& x, const Tensor& y, const float* gamma, const float* beta, float* mean,
                        float* invstd, float* running_mean, float* running_var, const NormSpec& spec,
                        const NormSumsReducer& reduce) {
  expect_shape("norm_forward_train", "y", y.shape, x.shape);
  const Shape& s = x.shape;
  const int64_t groups = norm_groups(spec.kind, s);
  const bool sync = reduce && spec.kind == NormKind::batch;
  // Per group: the sum of x; last, the element count (batch norm's, summed over ranks when synchronized).
  std::vector<double> sums(static_cast<size_t>(groups + 1));
  sums[groups] = spec.kind == NormKind::batch ? double(s.n * s.spatial()) : double(s.spatial());
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t gi = 0; gi < groups; ++gi)
    sums[gi] = group_sum(x, group(spec.kind, s, gi), [](const float* p, int64_t, int64_t i) { return double(p[i]); });
  if (sync) reduce(sums.data(), groups + 1);
  const double count = sums[groups];
  std::vector<double> mu(static_cast<size_t>(groups)), sq(static_cast<size_t>(groups));
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t gi = 0; gi < groups; ++gi) {
    const double m = mu[gi] = sums[gi] / count;
    sq[gi] = group_sum(x, group(spec.kind, s, gi), [m](const float* p, int64_t, int64_t i) {
      const double d = double(p[i]) - m;
      return d * d;
    });
  }
  if (sync) reduce(sq.data(), groups);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t gi = 0; gi < groups; ++gi) {
    const Group g = group(spec.kind, s, gi);
    const double var = sq[gi] / count;  // biased
    mean[gi] = static_cast<float>(mu[gi]);
    invstd[gi] = static_cast<float>(1.0 / std::sqrt(var + double(spec.eps)));
    normalize(x, y, g, mean[gi], invstd[gi], gamma[g.c], beta[g.c]);
    if (spec.kind == NormKind::batch && running_mean && running_var) {
      const double unbiased = count > 1 ? var * count / (count - 1) : var;
      running_mean[gi] = static_cast<float>((1.0 - spec.momentum) * running_mean[gi] + spec.momentum * mu[gi]);
      running_var[gi] = static_cast<float>((1.0 - spec.momentum) * running_var[gi] + spec.momentum * unbiased);
    }
  }
}

void norm_forward_infer(const Tensor& x, const Tensor& y, const float* gamma, const float* beta,
                        const float* running_mean, const float* running_var, const NormSpec& spec) {
  expect_shape("norm_forward_infer", "y", y.shape, x.shape);
  const Shape& s = x.shape;
  const int64_t groups = norm_groups(spec.kind, s);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t gi = 0; gi < groups; ++gi) {
    const Group g = group(spec.kind, s, gi);
    float mu, inv;
    if (spec.kind == NormKind::batch) {
      mu = running_mean[gi];
      inv = static_cast<float>(1.0 / std::sqrt(double(running_var[gi]) + double(spec.eps)));
    } else {
      const double count = double(s.spatial());
      const double m = group_sum(x, g, [](const float* p, int64_t, int64_t i) { return double(p[i]); }) / count;
      const double var = group_sum(x, g, [m](const float* p, int64_t, int64_t i) {
                           const double d = double(p[i]) - m;
                           return d * d;
                         }) / count;
      mu = static_cast<float>(m);
      inv = static_cast<float>(1.0 / std::sqrt(var + double(spec.eps)));
    }
    normalize(x, y, g, mu, inv, gamma[g.c], beta[g.c]);
  }
}

// With xhat = (x - mean) * invstd over a group of m elements:
//   dgamma += sum dy * xhat,  dbeta += sum dy,
//   dx = gamma * invstd * (dy - sum(dy) / m - xhat * sum(dy * xhat) / m),
// where, synchronized, dx takes the sums and m over all ranks and dgamma, dbeta
// this rank's own sums.
void norm_backward(const Tensor& x, const Tensor& dy, const Tensor& dx, const float* gamma, const float* mean,
                   const float* invstd, float* dgamma, float* dbeta, const NormSpec& spec,
                   const NormSumsReducer& reduce) {
  expect_shape("norm_backward", "dy", dy.shape, x.shape);
  expect_shape("norm_backward", "dx", dx.shape, x.shape);
  const Shape& s = x.shape;
  const int64_t groups = norm_groups(spec.kind, s);
  // [sum dy per group, sum dy * xhat per group, the element count]
  std::vector<double> local(static_cast<size_t>(2 * groups + 1));
  local[2 * groups] = spec.kind == NormKind::batch ? double(s.n * s.spatial()) : double(s.spatial());
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t gi = 0; gi < groups; ++gi) {
    const Group g = group(spec.kind, s, gi);
    const double mu = mean[gi], inv = invstd[gi];
    local[gi] = group_sum(dy, g, [](const float* p, int64_t, int64_t i) { return double(p[i]); });
    local[groups + gi] = group_sum(dy, g, [&](const float* p, int64_t plane, int64_t i) {
      return double(p[i]) * (double(x.channel(g.n0 + plane, g.c)[i]) - mu) * inv;
    });
  }
  std::vector<double> total = local;
  if (reduce && spec.kind == NormKind::batch) reduce(total.data(), 2 * groups + 1);
  const double m = total[2 * groups];
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t gi = 0; gi < groups; ++gi) {
    const Group g = group(spec.kind, s, gi);
    const float k = gamma[g.c] * invstd[gi];
    const float a = static_cast<float>(total[gi] / m), b = static_cast<float>(total[groups + gi] / m);
    for (int64_t n = g.n0; n < g.n1; ++n) {
      const float* px = x.channel(n, g.c);
      const float* pdy = dy.channel(n, g.c);
      float* pdx = dx.channel(n, g.c);
      for (int64_t i = 0; i < s.spatial(); ++i) pdx[i] = norm_input_grad(pdy[i], px[i], mean[gi], invstd[gi], k, a, b);
    }
  }
  // Parameter gradients sum over groups in a fixed order (instance norm: over samples).
  for (int64_t gi = 0; gi < groups; ++gi) {
    const int64_t c = group(spec.kind, s, gi).c;
    dgamma[c] += static_cast<float>(local[groups + gi]);
    dbeta[c] += static_cast<float>(local[gi]);
  }
}

}  // namespace unet
