// Shapes and non-owning tensor views. Every op takes its tensors as views.
//
// Layout is N, C, D, H, W (channels-first, W fastest). A 2D tensor has D == 1 and
// dims == 2; ops treat it as a 3D tensor of depth one, so one implementation
// serves both. Within a sample, channels are contiguous planes of spatial()
// elements; between samples the stride is batch_stride, which may exceed
// c * spatial(): that is how a view of a channel slice of a larger buffer
// (the zero-copy concatenation of a U-Net's skip and up paths) is expressed.
// Indices are 64-bit everywhere: a batch of 3D patches passes 2^31 elements.
//
// Element types: fp32 everywhere on the CPU. The CUDA backend's mixed
// precision (--precision bf16|fp16) keeps activations and their gradients in
// bf16 or fp16 (parameters, their gradients and the loss stay fp32); such a
// tensor's `data` is the address of its first element, which the CUDA kernels
// read through as<T>(), and views of it (channels()) step in its own element size.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace unet {

using Grid = std::array<int64_t, 3>;  // spatial sizes (or per-axis strides), D, H, W

struct Shape {
  int64_t n = 1, c = 1, d = 1, h = 1, w = 1;
  int dims = 2;  // 2 or 3 spatial dimensions

  int64_t spatial() const { return d * h * w; }
  Grid grid() const { return {d, h, w}; }  // the spatial sizes
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

enum class DType : uint8_t { f32, bf16, f16 };
inline int64_t dtype_bytes(DType t) { return t == DType::f32 ? 4 : 2; }
const char* dtype_name(DType t);  // "fp32", "bf16", "fp16"

struct Tensor {
  float* data = nullptr;
  Shape shape;
  int64_t batch_stride = 0;  // elements from one sample to the next
  DType dtype = DType::f32;

  Tensor() = default;
  Tensor(float* p, Shape s) : data(p), shape(s), batch_stride(s.sample()) {}
  Tensor(float* p, Shape s, int64_t stride) : data(p), shape(s), batch_stride(stride) {}
  Tensor(void* p, Shape s, int64_t stride, DType t)
      : data(static_cast<float*>(p)), shape(s), batch_stride(stride), dtype(t) {}

  // fp32 tensors only (the CPU's).
  float* sample(int64_t n) const { return data + n * batch_stride; }
  float* channel(int64_t n, int64_t c) const { return sample(n) + c * shape.spatial(); }
  bool contiguous() const { return batch_stride == shape.sample(); }
  template <class T>
  T* as() const { return reinterpret_cast<T*>(data); }
  // The address of element `offset` (in elements of this tensor's type).
  void* at(int64_t offset) const { return reinterpret_cast<char*>(data) + offset * dtype_bytes(dtype); }

  // A view of channels [c0, c0 + count) of every sample: no copy.
  Tensor channels(int64_t c0, int64_t count) const {
    if (c0 < 0 || count < 0 || c0 + count > shape.c)
      throw std::out_of_range("Tensor::channels: [" + std::to_string(c0) + ", " +
                              std::to_string(c0 + count) + ") outside " + std::to_string(shape.c) +
                              " channels");
    Shape s = shape;
    s.c = count;
    return Tensor(at(c0 * shape.spatial()), s, batch_stride, dtype);
  }
};

// Throws std::invalid_argument naming `op` and both shapes when they differ.
void expect_shape(const char* op, const char* what, const Shape& got, const Shape& want);
// Throws std::invalid_argument naming `op` when t is not of type `want`.
void expect_dtype(const char* op, const char* what, const Tensor& t, DType want);

}  // namespace unet
