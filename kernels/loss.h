// Output heads fused with their losses: one call returns the loss and writes its
// gradient with respect to the logits.
//
// Heads: sigmoid (one logit channel, binary labels 0/1) or softmax (C >= 2
// channels, labels 0..C-1). Labels are int32, one per voxel, N x D x H x W,
// contiguous. A voxel whose label equals ignore_label contributes nothing to
// the loss and gets a zero gradient; any other label outside the classes is an
// error (std::invalid_argument naming the value and the voxel).
//
// The loss is   ce_weight * CE + region_weight * R.
//   CE: mean over counted voxels of -log p(label), each voxel weighted by
//       class_weights[label] and normalized by the sum of those weights
//       (PyTorch's weighted mean). Sigmoid: binary cross-entropy, classes
//       0 and 1 for the weights.
//   R:  for each class c taken (softmax: 0..C-1, or 1..C-1 without background;
//       sigmoid: the foreground only) the Tversky index over the whole batch,
//         TI_c = (TP + s) / (TP + alpha * FP + beta * FN + s),
//       TP = sum p_c g_c, FP = sum p_c (1 - g_c), FN = sum (1 - p_c) g_c, with p
//       the probabilities and g the one-hot labels; R = mean_c (1 - TI_c)^gamma.
//       alpha = beta = 0.5 is soft Dice, alpha = beta = 1 is (soft) Jaccard,
//       gamma != 1 is the focal Tversky loss.
//
// Memory contract
//   loss_forward_backward: reads logits, labels; overwrites dlogits (same
//   shape as logits; it may not alias them). Returns the loss.
#pragma once

#include <math.h>

#include <functional>
#include <string>
#include <vector>

#include "kernels/base/choice.h"
#include "kernels/base/tensor.h"
#include "kernels/base/common.h"
#include "kernels/head.h"
#include "kernels/step.h"

namespace unet {

enum class LossKind { bce, ce, weighted_ce, dice, jaccard, tversky, focal_tversky, dice_ce };
inline constexpr Choice<LossKind> kLossKinds[] = {
    {"bce", LossKind::bce, "binary cross-entropy (sigmoid head)"},
    {"ce", LossKind::ce, "cross-entropy"},
    {"weighted_ce", LossKind::weighted_ce, "cross-entropy with --class-weights"},
    {"dice", LossKind::dice, "soft Dice"},
    {"jaccard", LossKind::jaccard, "soft Jaccard (IoU)"},
    {"tversky", LossKind::tversky, "Tversky, --tversky-beta weighting false negatives"},
    {"focal_tversky", LossKind::focal_tversky, "focal Tversky, --focal-gamma"},
    {"dice_ce", LossKind::dice_ce, "Dice + cross-entropy (nnU-Net's)"}};

struct LossSpec {
  Head head = Head::softmax;
  float ce_weight = 1.f;
  float region_weight = 0.f;
  float alpha = 0.5f, beta = 0.5f, gamma = 1.f;
  float smooth = 1.f;                // s above: keeps an absent class from dividing by zero
  bool include_background = true;    // softmax only
  std::vector<float> class_weights;  // CE only; empty means all ones
  int32_t ignore_label = -1;         // negative: no label is ignored
  // dlogits come out multiplied by it (the loss itself does not): mixed
  // precision's loss scale, which keeps small fp16 gradients from flushing to zero.
  float grad_scale = 1.f;
};

// The loss with a share of a larger one (deep supervision's levels): the loss
// and its gradient both scaled by `weight`.
inline LossSpec with_weight(LossSpec spec, float weight) {
  spec.ce_weight *= weight;
  spec.region_weight *= weight;
  return spec;
}

// The spec of a named loss. tversky_beta is the weight of false negatives;
// alpha = 1 - beta as in Salehi et al.; focal_gamma is the focal Tversky exponent.
LossSpec make_loss(LossKind kind, Head head, float tversky_beta = 0.7f, float focal_gamma = 0.75f,
                   std::vector<float> class_weights = {});

// Numerically stable pieces shared by host and device.
// log(1 + exp(z)) without overflow.
UNET_HD float softplus(float z) { return z > 0.f ? z + log1pf(expf(-z)) : log1pf(expf(z)); }

// The loss's batch sums (the Tversky TP, sum p, sum g per class; the weighted
// CE and its weight total). Data parallelism passes a function that sums them
// over ranks before the loss and its gradient are formed: every rank then gets
// the loss of the global batch and the gradient of that loss with respect to
// its own logits, so that summing the parameter gradients over ranks gives the
// single-process gradient (region losses included, which a per-rank mean would
// not).
using LossSumsReducer = std::function<void(std::vector<double>& sums)>;

double loss_forward_backward(const Tensor& logits, const int32_t* labels, const Tensor& dlogits,
                             const LossSpec& spec, const LossSumsReducer& reduce_sums = nullptr);

// The per-voxel halves of loss_forward_backward, shared by the CPU loop and the
// CUDA kernels. z and p point at the voxel's first channel; channels are
// `plane` apart. Sums layout: [3c] TP_c, [3c + 1] sum p_c, [3c + 2] sum g_c for
// every channel c, then [3C] the weighted CE, [3C + 1] the weight total.
//
// Pass 1: writes the probabilities to p and adds the voxel's terms to sums.
UNET_HD void loss_voxel_sums(const float* z, float* p, int64_t plane, int channels, bool sig, int32_t label,
                             double w, double* sums) {
  if (sig) {
    p[0] = sigmoid(z[0]);
    sums[3 * channels] += w * (double(softplus(z[0])) - (label == 1 ? double(z[0]) : 0.0));
  } else {
    float zmax = z[0];
    for (int c = 1; c < channels; ++c) zmax = z[c * plane] > zmax ? z[c * plane] : zmax;
    double total = 0;
    for (int c = 0; c < channels; ++c) total += exp(double(z[c * plane] - zmax));
    for (int c = 0; c < channels; ++c) p[c * plane] = static_cast<float>(exp(double(z[c * plane] - zmax)) / total);
    sums[3 * channels] += w * (log(total) - double(z[label * plane] - zmax));
  }
  sums[3 * channels + 1] += w;
  for (int c = 0; c < channels; ++c) {
    const bool g = sig ? label == 1 : label == c;
    sums[3 * c] += g ? p[c * plane] : 0.f;
    sums[3 * c + 1] += p[c * plane];
    sums[3 * c + 2] += g ? 1 : 0;
  }
}

// What pass 2 needs from the batch's sums: the region term's derivative with
// respect to p_c(v) is A[c] g_c(v) + B[c]; the CE's scale is ce_weight / W.
constexpr int kMaxLossChannels = 32;
struct LossTerms {
  double loss = 0;
  float ce_scale = 0;
  int first = 0;  // the first channel the region term takes
  float A[kMaxLossChannels] = {}, B[kMaxLossChannels] = {};
};

// The scalars of a LossSpec, which kernels take by value.
struct LossScalars {
  bool sig = false, include_background = true;
  float ce_weight = 1, region_weight = 0, alpha = 0.5f, beta = 0.5f, gamma = 1, smooth = 1;
};
inline LossScalars loss_scalars(const LossSpec& s) {
  return {s.head == Head::sigmoid, s.include_background, s.ce_weight, s.region_weight, s.alpha, s.beta, s.gamma,
          s.smooth};
}

// The loss and pass 2's coefficients from the batch's sums (channels <=
// kMaxLossChannels); the gradient's coefficients carry grad_scale. On the host
// for the CPU, on the device in the step that a CUDA Graph replays (step.h).
UNET_HD LossTerms loss_terms(const double* sums, const LossScalars& s, int channels, float grad_scale) {
  LossTerms t;
  t.first = s.sig ? 0 : (s.include_background ? 0 : 1);
  const int taken = channels - t.first;
  const double W = sums[3 * channels + 1];
  const double ce = W > 0 ? sums[3 * channels] / W : 0.0;
  double region = 0;
  for (int c = t.first; c < channels; ++c) {
    const double tp = sums[3 * c], sp = sums[3 * c + 1], sg = sums[3 * c + 2];
    const double a = s.alpha, bt = s.beta, sm = s.smooth;
    // TI = (TP + s) / ((1 - a - b) TP + a SP + b SG + s)
    const double num = tp + sm, den = (1 - a - bt) * tp + a * sp + bt * sg + sm;
    const double ti = num / den;
    const double miss = fmax(1.0 - ti, 1e-12);
    region += pow(miss, double(s.gamma)) / taken;
    const double dR_dti = -double(s.gamma) * pow(miss, double(s.gamma) - 1) / taken;
    const double dti_dtp = (den - num * (1 - a - bt)) / (den * den), dti_dsp = -num * a / (den * den);
    // The gradient is linear in A, B and ce_scale: the loss scale goes in here.
    t.A[c] = static_cast<float>(grad_scale * s.region_weight * dR_dti * dti_dtp);
    t.B[c] = static_cast<float>(grad_scale * s.region_weight * dR_dti * dti_dsp);
  }
  t.ce_scale = W > 0 ? static_cast<float>(double(grad_scale) * s.ce_weight / W) : 0.f;
  t.loss = s.ce_weight * ce + s.region_weight * region;
  return t;
}

// Throws std::invalid_argument where the loss cannot take these tensors: dlogits
// of another shape, more than kMaxLossChannels channels, class weights not one
// per class. Both backends check before any work.
void check_loss(const Tensor& logits, const Tensor& dlogits, const LossSpec& spec);

// The error for a label outside the classes, from the CPU's check or the
// device's record of it.
std::string bad_label_message(int32_t label, int64_t voxel, int classes, int32_t ignore_label);

// Pass 2: turns the voxel's probabilities into the gradient in place; wce is
// ce_scale times the voxel's class weight.
UNET_HD void loss_voxel_grad(float* p, int64_t plane, int channels, bool sig, int32_t label, float wce,
                             const LossTerms& t) {
  if (sig) {
    const float g = label == 1 ? 1.f : 0.f, q = p[0];
    p[0] = wce * (q - g) + q * (1.f - q) * (t.A[0] * g + t.B[0]);
    return;
  }
  float dot = 0.f;  // sum_c p_c dp_c
  for (int c = t.first; c < channels; ++c) dot += p[c * plane] * (t.A[c] * (label == c) + t.B[c]);
  for (int c = 0; c < channels; ++c) {
    const float q = p[c * plane];
    const float dp = c >= t.first ? t.A[c] * (label == c) + t.B[c] : 0.f;
    p[c * plane] = wce * (q - (label == c ? 1.f : 0.f)) + q * (dp - dot);
  }
}

#ifdef UNET_CUDA
// The same on device pointers (labels too). `workspace` holds
// loss_workspace_doubles(logits.shape) doubles.
int64_t loss_workspace_doubles(const Shape& logits);
// The form a training step runs (step.h): the gradient scaled by
// in->loss_scale, loss / in->accumulate added to out->loss, and a label outside
// the classes recorded in out (the step is then not taken) rather than thrown:
// nothing waits for the host, so that the step can be captured, unless
// reduce_sums is given (data parallel: the sums go over the ranks on the host).
void loss_step_cuda(const Tensor& logits, const int32_t* labels, const Tensor& dlogits, const LossSpec& spec,
                    const StepInputs* in, StepOutputs* out, double* workspace, Stream stream,
                    const LossSumsReducer& reduce_sums = nullptr);
// loss_forward_backward's: the loss comes to the host (a wait on `stream`).
double loss_forward_backward_cuda(const Tensor& logits, const int32_t* labels, const Tensor& dlogits,
                                  const LossSpec& spec, double* workspace, Stream stream);
#endif

}  // namespace unet
