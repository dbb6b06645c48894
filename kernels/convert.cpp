#include "kernels/convert.h"

#include "kernels/base/half.h"

namespace unet {
namespace {

template <class From, class To>
void run(const From* src, To* dst, int64_t count, bool accumulate) {
#pragma omp parallel for schedule(static) if (count > 65536)
  for (int64_t i = 0; i < count; ++i) store(dst + i, accumulate ? load(dst + i) + load(src + i) : load(src + i));
}

template <class From>
void to_type(const From* src, void* dst, DType to, int64_t count, bool accumulate) {
  switch (to) {
    case DType::f32: return run(src, static_cast<float*>(dst), count, accumulate);
    case DType::bf16: return run(src, static_cast<bf16*>(dst), count, accumulate);
    case DType::f16: return run(src, static_cast<f16*>(dst), count, accumulate);
  }
}

}  // namespace

void convert(const void* src, DType from, void* dst, DType to, int64_t count, GradMode mode) {
  const bool acc = mode == GradMode::accumulate;
  switch (from) {
    case DType::f32: return to_type(static_cast<const float*>(src), dst, to, count, acc);
    case DType::bf16: return to_type(static_cast<const bf16*>(src), dst, to, count, acc);
    case DType::f16: return to_type(static_cast<const f16*>(src), dst, to, count, acc);
  }
}

}  // namespace unet
