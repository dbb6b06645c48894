// The norms and the training step's loss and update, dispatched once. Their
// GPU kernels reduce through the backend's scratch (Backend::scratch), which
// reserve() sizes when the net is planned; the CPU keeps its sums on the stack.
#include <algorithm>
#include <stdexcept>

#include "engine/device/on_device.h"
#include "engine/device/ops.h"

namespace unet::ops {
namespace {

#ifdef UNET_CUDA
void no_sync_batchnorm(const NormSumsReducer& reduce) {
  if (reduce) throw std::invalid_argument("--sync-batchnorm: the CUDA backend has no synchronized batch norm yet");
}
#endif

}  // namespace

void norm_forward_train(Backend& be, const Tensor& x, const Tensor& y, const float* gamma, const float* beta,
                        float* mean, float* invstd, float* running_mean, float* running_var, const NormSpec& spec,
                        const NormSumsReducer& reduce) {
#ifdef UNET_CUDA
  if (be.is_cuda()) {
    no_sync_batchnorm(reduce);
    return norm_forward_train_cuda(x, y, gamma, beta, mean, invstd, running_mean, running_var, spec,
                                   be.scratch(3 * norm_groups(spec.kind, x.shape)), be.stream());
  }
#endif
  unet::norm_forward_train(x, y, gamma, beta, mean, invstd, running_mean, running_var, spec, reduce);
}

void norm_forward_infer(Backend& be, const Tensor& x, const Tensor& y, const float* gamma, const float* beta,
                        const float* running_mean, const float* running_var, const NormSpec& spec) {
  UNET_ON_DEVICE(be, norm_forward_infer_cuda(x, y, gamma, beta, running_mean, running_var, spec,
                                             be.scratch(3 * norm_groups(spec.kind, x.shape)), stream))
  unet::norm_forward_infer(x, y, gamma, beta, running_mean, running_var, spec);
}

void norm_backward(Backend& be, const Tensor& x, const Tensor& dy, const Tensor& dx, const float* gamma,
                   const float* mean, const float* invstd, float* dgamma, float* dbeta, const NormSpec& spec,
                   const NormSumsReducer& reduce) {
#ifdef UNET_CUDA
  if (be.is_cuda()) {
    no_sync_batchnorm(reduce);
    return norm_backward_cuda(x, dy, dx, gamma, mean, invstd, dgamma, dbeta, spec,
                              be.scratch(3 * norm_groups(spec.kind, x.shape)), be.stream());
  }
#endif
  unet::norm_backward(x, dy, dx, gamma, mean, invstd, dgamma, dbeta, spec, reduce);
}

void reserve(Backend& be, const Shape& logits, int64_t norm_groups) {
#ifdef UNET_CUDA
  if (be.is_cuda())
    be.scratch(std::max({3 * norm_groups, loss_workspace_doubles(logits), int64_t(kGradientNormBlocks + 1)}));
#else
  (void)be, (void)logits, (void)norm_groups;
#endif
}

void step_loss(Backend& be, const Tensor& logits, const int32_t* labels, const Tensor& dlogits, const LossSpec& spec,
               const LossSumsReducer& reduce, const StepInputs* in, StepOutputs* out) {
  UNET_ON_DEVICE(be, loss_step_cuda(logits, labels, dlogits, spec, in, out,
                                    be.scratch(loss_workspace_doubles(logits.shape)), stream, reduce))
  LossSpec scaled = spec;
  scaled.grad_scale = in->loss_scale;
  out->loss += unet::loss_forward_backward(logits, labels, dlogits, scaled, reduce) / in->accumulate;
}

void step_update(Backend& be, float* params, const float* grads, float* m, float* v, int64_t count,
                 const ParamRanges& ranges, const OptimizerSpec& spec, const StepInputs* in, StepOutputs* out) {
  UNET_ON_DEVICE(be, step_update_cuda(params, grads, m, v, count, ranges, spec, in, out,
                                      be.scratch(kGradientNormBlocks + 1), stream))
  out->sumsq = gradient_sumsq(grads, count);
  out->factor = step_factor(*out, *in);
  if (out->factor == 0.f) return;
  for (const auto& [offset, n] : ranges)
    optimizer_update(params + offset, grads + offset, m + offset, v + offset, n, spec, in->lr, in->bias1, in->bias2,
                     out->factor);
}

}  // namespace unet::ops
