#include "kernels/optimizer.h"

#include <stdexcept>
#include <string>

#include "kernels/base/parallel.h"

namespace unet {

void optimizer_step(float* params, const float* grads, float* m, float* v, int64_t count,
                    const OptimizerSpec& spec, float lr, int64_t step, float grad_scale) {
  if (step < 1) throw std::invalid_argument("optimizer_step: step " + std::to_string(step) + " (it is 1-based)");
  optimizer_update(params, grads, m, v, count, spec, lr, adam_bias(spec.beta1, step), adam_bias(spec.beta2, step),
                   grad_scale);
}

void optimizer_update(float* params, const float* grads, float* m, float* v, int64_t count,
                      const OptimizerSpec& spec_in, float lr, float bias1, float bias2, float grad_scale) {
  // A local copy: the compiler then knows the parameter stores cannot change the
  // spec's fields, keeps them in registers and vectorizes the loops.
  const OptimizerSpec spec = spec_in;
  if (spec.kind == OptimizerKind::sgd) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; ++i) sgd_update(params[i], grads[i] * grad_scale, m[i], lr, spec);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) adam_update(params[i], grads[i] * grad_scale, m[i], v[i], lr, bias1, bias2, spec);
}

double gradient_sumsq(const float* grads, int64_t count) {
  return deterministic_sum(count, [grads](int64_t b, int64_t e) {
    double s = 0;
    for (int64_t i = b; i < e; ++i) s += double(grads[i]) * double(grads[i]);
    return s;
  });
}

double gradient_norm(const float* grads, int64_t count) { return std::sqrt(gradient_sumsq(grads, count)); }

}  // namespace unet
