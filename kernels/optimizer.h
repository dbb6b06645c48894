// Optimizer steps over the flat parameter buffer: SGD (momentum, Nesterov,
// weight decay), Adam (L2 weight decay added to the gradient) and AdamW
// (decoupled weight decay), following PyTorch's torch.optim formulas; and the
// global gradient norm for clipping.
//
// Memory contract
//   optimizer_step: reads grads; overwrites params and the state buffers
//                   (m: SGD's momentum buffer or Adam's first moment; v: Adam's
//                   second moment; both zero before the first step).
//   gradient_norm:  reads grads.
// The gradient is multiplied by grad_scale before use: clipping (clip_scale) and
// averaging over accumulation steps fold into that one factor.
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/base/choice.h"
#include "kernels/base/common.h"
#include "kernels/step.h"

namespace unet {

enum class OptimizerKind { sgd, adam, adamw };
inline constexpr Choice<OptimizerKind> kOptimizers[] = {
    {"sgd", OptimizerKind::sgd, "SGD with --momentum (--nesterov)"},
    {"adam", OptimizerKind::adam, "Adam, weight decay added to the gradient"},
    {"adamw", OptimizerKind::adamw, "AdamW, decoupled weight decay"}};

struct OptimizerSpec {
  OptimizerKind kind = OptimizerKind::adam;
  float momentum = 0.9f;  // SGD
  bool nesterov = false;  // SGD
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;  // Adam, AdamW
  float weight_decay = 0.f;
};

// One parameter's SGD update (PyTorch's SGD with dampening 0; buffer starts at 0).
UNET_HD void sgd_update(float& p, float g, float& buf, float lr, const OptimizerSpec& s) {
  g += s.weight_decay * p;
  buf = s.momentum * buf + g;
  p -= lr * (s.nesterov ? g + s.momentum * buf : buf);
}

// One parameter's Adam/AdamW update at step t (1-based); bias1 = 1 - beta1^t,
// bias2 = 1 - beta2^t, computed once per step by the caller.
UNET_HD void adam_update(float& p, float g, float& m, float& v, float lr, float bias1, float bias2,
                         const OptimizerSpec& s) {
  if (s.kind == OptimizerKind::adamw)
    p -= lr * s.weight_decay * p;
  else
    g += s.weight_decay * p;
  m = s.beta1 * m + (1.f - s.beta1) * g;
  v = s.beta2 * v + (1.f - s.beta2) * g * g;
  p -= lr * (m / bias1) / (sqrtf(v / bias2) + s.eps);
}

// step is 1-based (the number of this update).
void optimizer_step(float* params, const float* grads, float* m, float* v, int64_t count,
                    const OptimizerSpec& spec, float lr, int64_t step, float grad_scale);
// The same with Adam's bias corrections given (adam_bias), as a training step has them.
void optimizer_update(float* params, const float* grads, float* m, float* v, int64_t count,
                      const OptimizerSpec& spec, float lr, float bias1, float bias2, float grad_scale);

// The gradient's squared Euclidean norm, and the norm; deterministic (see parallel.h).
double gradient_sumsq(const float* grads, int64_t count);
double gradient_norm(const float* grads, int64_t count);

// (offset, count) runs of the parameters a step trains (frozen ones left out).
using ParamRanges = std::vector<std::pair<int64_t, int64_t>>;

#ifdef UNET_CUDA
// One fused kernel over device buffers; the same updates as optimizer_step.
void optimizer_step_cuda(float* params, const float* grads, float* m, float* v, int64_t count,
                         const OptimizerSpec& spec, float lr, int64_t step, float grad_scale, Stream stream);
// The gradient's norm on the device: a fixed grid summing squares in double, the
// blocks added in order (deterministic); `workspace` holds
// kGradientNormBlocks + 1 doubles; the norm comes to the host (a copy and a wait).
constexpr int kGradientNormBlocks = 256;
double gradient_norm_cuda(const float* grads, int64_t count, double* workspace, Stream stream);
// A training step's update on its scalars in device memory (step.h): the
// squared norm of grads[0, count) and step_factor into out, then, unless the
// factor is 0, the optimizer over each range with in's learning rate and bias
// corrections. Nothing waits for the host. `workspace`: kGradientNormBlocks doubles.
void step_update_cuda(float* params, const float* grads, float* m, float* v, int64_t count, const ParamRanges& ranges,
                      const OptimizerSpec& spec, const StepInputs* in, StepOutputs* out, double* workspace,
                      Stream stream);
#endif

}  // namespace unet
