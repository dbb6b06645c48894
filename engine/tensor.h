// Shapes and non-owning tensor views. Every op takes its tensors as views.
//
// Layout is N, C, D, H, W (channels-first, W fastest). A 2D tensor has D == 1 and
// dims == 2; ops treat it as a 3D tensor of depth one, so one implementation
// serves both. Within a sample, channels are contiguous planes of spatial()
// elements; between samples the stride is batch_stride, which may exceed
// c * spatial(): that is how a view of a channel slice of a larger buffer
// (the zero-copy concatenation of a U-Net's skip and up paths) is expressed.
// Indices are 64-bit everywhere: a batch of 3D patches passes 2^31 elements.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace unet {

struct Shape {
  int64_t n = 1, c = 1, d = 1, h = 1, w = 1;
  int dims = 2;  // 2 or 3 spatial dimensions

  int64_t spatial() const { return d * h * w; }
  int64_t sample() const { return c * spatial(); }
  int64_t count() const { return n * sample(); }
  bool operator==(const Shape& o) const {
    return n == o.n && c == o.c && d == o.d && h == o.h && w == o.w && dims == o.dims;
  }
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const;  // "2x3x5x7" or "2x3x4x5x7"
};

inline Shape shape2d(int64_t n, int64_t c, int64_t h, int64_t w) { return {n, c, 1, h, w, 2}; }
inline Shape shape3d(int64_t n, int64_t c, int64_t d, int64_t h, int64_t w) { return {n, c, d, h, w, 3}; }

struct Tensor {
  float* data = nullptr;
  Shape shape;
  int64_t batch_stride = 0;  // elements from one sample to the next

  Tensor() = default;
  Tensor(float* p, Shape s) : data(p), shape(s), batch_stride(s.sample()) {}
  Tensor(float* p, Shape s, int64_t stride) : data(p), shape(s), batch_stride(stride) {}

  float* sample(int64_t n) const { return data + n * batch_stride; }
  float* channel(int64_t n, int64_t c) const { return sample(n) + c * shape.spatial(); }
  bool contiguous() const { return batch_stride == shape.sample(); }

  // A view of channels [c0, c0 + count) of every sample: no copy.
  Tensor channels(int64_t c0, int64_t count) const {
    if (c0 < 0 || count < 0 || c0 + count > shape.c)
      throw std::out_of_range("Tensor::channels: [" + std::to_string(c0) + ", " +
                              std::to_string(c0 + count) + ") outside " + std::to_string(shape.c) +
                              " channels");
    Shape s = shape;
    s.c = count;
    return Tensor(data + c0 * shape.spatial(), s, batch_stride);
  }
};

// Throws std::invalid_argument naming `op` and both shapes when they differ.
void expect_shape(const char* op, const char* what, const Shape& got, const Shape& want);

}  // namespace unet
