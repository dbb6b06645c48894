#include "kernels/loss.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/metrics.h"
#include "kernels/base/parallel.h"

namespace unet {

LossSpec make_loss(LossKind kind, Head head, float tversky_beta, float focal_gamma, std::vector<float> class_weights) {
  LossSpec s;
  s.head = head;
  s.ce_weight = 0.f;
  s.region_weight = 1.f;
  switch (kind) {
    case LossKind::bce:
    case LossKind::ce:
      if ((kind == LossKind::bce) != (head == Head::sigmoid))
        throw std::invalid_argument(kind == LossKind::bce ? "loss bce needs the sigmoid head (one class)"
                                                          : "loss ce needs the softmax head; use bce for one class");
      s.ce_weight = 1.f, s.region_weight = 0.f;
      break;
    case LossKind::weighted_ce:
      if (class_weights.empty()) throw std::invalid_argument("loss weighted_ce needs class weights");
      s.ce_weight = 1.f, s.region_weight = 0.f;
      s.class_weights = std::move(class_weights);
      break;
    case LossKind::dice: break;
    case LossKind::jaccard: s.alpha = s.beta = 1.f; break;
    case LossKind::focal_tversky: s.gamma = focal_gamma; [[fallthrough]];
    case LossKind::tversky:
      if (!(tversky_beta >= 0.f && tversky_beta <= 1.f))
        throw std::invalid_argument("Tversky beta " + std::to_string(tversky_beta) + " outside [0, 1]");
      s.beta = tversky_beta, s.alpha = 1.f - tversky_beta;
      break;
    case LossKind::dice_ce: s.ce_weight = 1.f; break;
  }
  if (!(s.gamma > 0.f)) throw std::invalid_argument("focal Tversky gamma must be positive");
  return s;
}

namespace {

bool ignored(int32_t label, const LossSpec& s) { return s.ignore_label >= 0 && label == s.ignore_label; }

void validate(const Tensor& logits, const int32_t* labels, const Tensor& dlogits, const LossSpec& s, int k) {
  check_loss(logits, dlogits, s);
  const int64_t voxels = logits.shape.n * logits.shape.spatial();
  for (int64_t v = 0; v < voxels; ++v)
    if (!ignored(labels[v], s) && (labels[v] < 0 || labels[v] >= k))
      throw std::invalid_argument(bad_label_message(labels[v], v, k, s.ignore_label));
}

// Calls f(n, i) for every voxel of the batch in [b, e) (voxel v = n * plane + i).
template <class F>
void each_voxel(int64_t plane, int64_t b, int64_t e, F f) {
  int64_t n = b / plane, i = b % plane;
  for (int64_t v = b; v < e; ++v) {
    f(n, i);
    if (++i == plane) i = 0, ++n;
  }
}

}  // namespace

void check_loss(const Tensor& logits, const Tensor& dlogits, const LossSpec& spec) {
  expect_shape("loss", "dlogits", dlogits.shape, logits.shape);
  if (logits.shape.c > kMaxLossChannels)
    throw std::invalid_argument("loss: " + std::to_string(logits.shape.c) + " channels; at most " +
                                std::to_string(kMaxLossChannels) + " are supported");
  const int k = head_classes(spec.head, logits.shape);
  if (!spec.class_weights.empty() && static_cast<int>(spec.class_weights.size()) != k)
    throw std::invalid_argument("loss: " + std::to_string(spec.class_weights.size()) + " class weights for " +
                                std::to_string(k) + " classes");
}

std::string bad_label_message(int32_t label, int64_t voxel, int classes, int32_t ignore_label) {
  return "loss: label " + std::to_string(label) + " at voxel " + std::to_string(voxel) + " is outside classes 0.." +
         std::to_string(classes - 1) +
         (ignore_label >= 0 ? " (ignore label " + std::to_string(ignore_label) + ")" : std::string());
}

// Pass 1 writes the probabilities into dlogits and sums the batch's terms
// (loss_voxel_sums); loss_terms turns the sums into the loss and the region
// term's coefficients; pass 2 turns the probabilities into the gradient in place
// (loss_voxel_grad), chained through the softmax (dz_j = p_j (dp_j - sum_c p_c
// dp_c)) or the sigmoid (p (1 - p)).
double loss_forward_backward(const Tensor& logits, const int32_t* labels, const Tensor& dlogits,
                             const LossSpec& spec, const LossSumsReducer& reduce_sums) {
  const LossSpec s = spec;  // a local copy: stores to dlogits cannot alias its fields
  const Shape& sh = logits.shape;
  const int k = head_classes(s.head, sh);
  validate(logits, labels, dlogits, s, k);
  const bool sig = s.head == Head::sigmoid;
  const int channels = static_cast<int>(sh.c);
  const int64_t plane = sh.spatial(), voxels = sh.n * plane;
  auto weight = [&](int32_t label) { return s.class_weights.empty() ? 1.0 : double(s.class_weights[label]); };

  std::vector<double> sums = deterministic_sums(voxels, 3 * channels + 2, [&](int64_t b, int64_t e, double* out) {
    each_voxel(plane, b, e, [&](int64_t n, int64_t i) {
      float* p = dlogits.sample(n) + i;
      const int32_t label = labels[n * plane + i];
      if (ignored(label, s)) {
        for (int c = 0; c < channels; ++c) p[c * plane] = 0.f;
        return;
      }
      loss_voxel_sums(logits.sample(n) + i, p, plane, channels, sig, label, weight(label), out);
    });
  });
  if (reduce_sums) reduce_sums(sums);
  const LossTerms t = loss_terms(sums.data(), loss_scalars(s), channels, s.grad_scale);

#pragma omp parallel for schedule(static)
  for (int64_t chunk = 0; chunk < voxels; chunk += kReduceChunk)
    each_voxel(plane, chunk, std::min(chunk + kReduceChunk, voxels), [&](int64_t n, int64_t i) {
      const int32_t label = labels[n * plane + i];
      if (ignored(label, s)) return;  // pass 1 zeroed it
      loss_voxel_grad(dlogits.sample(n) + i, plane, channels, sig, label,
                      t.ce_scale * static_cast<float>(weight(label)), t);
    });
  return t.loss;
}

}  // namespace unet
