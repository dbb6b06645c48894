#include "kernels/optimizer.h"

#include <stdexcept>
#include <string>

#include "kernels/parallel.h"

namespace unet {

void optimizer_step(float* params, const float* grads, float* m, float* v, int64_t count,
                    const OptimizerSpec& spec_in, float lr, int64_t step, float grad_scale) {
  // A local copy: the compiler then knows the parameter stores cannot change the
  // spec's fields, keeps them in registers and vectorizes the loops.
  const OptimizerSpec spec = spec_in;
  if (step < 1) throw std::invalid_argument("optimizer_step: step " + std::to_string(step) + " (it is 1-based)");
  if (spec.kind == OptimizerKind::sgd) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < count; ++i) sgd_update(params[i], grads[i] * grad_scale, m[i], lr, spec);
    return;
  }
  const float bias1 = static_cast<float>(1.0 - std::pow(double(spec.beta1), double(step)));
  const float bias2 = static_cast<float>(1.0 - std::pow(double(spec.beta2), double(step)));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) adam_update(params[i], grads[i] * grad_scale, m[i], v[i], lr, bias1, bias2, spec);
}

double gradient_norm(const float* grads, int64_t count) {
  return std::sqrt(deterministic_sum(count, [grads](int64_t b, int64_t e) {
    double s = 0;
    for (int64_t i = b; i < e; ++i) s += double(grads[i]) * double(grads[i]);
    return s;
  }));
}

}  // namespace unet
