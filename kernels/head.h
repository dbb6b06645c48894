// The network head's vocabulary, one for the loss, the metrics, prediction and
// training: how many logit channels a head has for its classes, how many
// classes its logits stand for, and the predicted class and probabilities of
// each voxel. A sigmoid head has one logit (class 1 against class 0), a
// softmax head one per class.
#pragma once

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/base/common.h"
#include "kernels/base/tensor.h"

namespace unet {

enum class Head { sigmoid, softmax };

// The head's logit channels for `classes` classes.
inline int64_t head_channels(Head head, int64_t classes) { return head == Head::sigmoid ? 1 : classes; }

// The classes that logits of this shape stand for; throws std::invalid_argument
// for a channel count the head cannot have.
inline int head_classes(Head head, const Shape& logits) {
  if (head == Head::sigmoid) {
    if (logits.c != 1)
      throw std::invalid_argument("sigmoid head needs 1 logit channel, got " + std::to_string(logits.c));
    return 2;
  }
  if (logits.c < 2) throw std::invalid_argument("softmax head needs at least 2 channels, got " + std::to_string(logits.c));
  return static_cast<int>(logits.c);
}

// Overflow-free in both directions.
UNET_HD float sigmoid(float z) { return z >= 0.f ? 1.f / (1.f + expf(-z)) : expf(z) / (1.f + expf(z)); }

// Each voxel's class (argmax; the first of equal logits) into classes[spatial],
// and, when probs is given, its probabilities (head channels x spatial: the
// sigmoid, or the softmax over the classes). logits: head channels x spatial.
inline void predict_classes(const float* logits, Head head, int classes, int64_t spatial, int32_t* out,
                            float* probs = nullptr) {
  const int64_t K = head_channels(head, classes), S = spatial;
  for (int64_t i = 0; i < S; ++i) {
    if (K == 1) {
      out[i] = logits[i] > 0;
      if (probs) probs[i] = sigmoid(logits[i]);
      continue;
    }
    float top = logits[i];
    int best = 0;
    for (int64_t k = 1; k < K; ++k)
      if (logits[k * S + i] > top) top = logits[k * S + i], best = static_cast<int>(k);
    out[i] = best;
    if (!probs) continue;
    float total = 0;
    for (int64_t k = 0; k < K; ++k) total += probs[k * S + i] = std::exp(logits[k * S + i] - top);
    for (int64_t k = 0; k < K; ++k) probs[k * S + i] /= total;
  }
}

}  // namespace unet
