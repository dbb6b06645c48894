#include "kernels/base/tensor.h"

namespace unet {

std::string Shape::str() const {
  std::string s = std::to_string(n) + "x" + std::to_string(c) + "x";
  if (dims == 3) s += std::to_string(d) + "x";
  return s + std::to_string(h) + "x" + std::to_string(w);
}

void expect_shape(const char* op, const char* what, const Shape& got, const Shape& want) {
  if (got != want)
    throw std::invalid_argument(std::string(op) + ": " + what + " has shape " + got.str() +
                                ", expected " + want.str());
}

const char* dtype_name(DType t) { return t == DType::f32 ? "fp32" : t == DType::bf16 ? "bf16" : "fp16"; }

void expect_dtype(const char* op, const char* what, const Tensor& t, DType want) {
  if (t.dtype != want)
    throw std::invalid_argument(std::string(op) + ": " + what + " is " + dtype_name(t.dtype) + ", expected " +
                                dtype_name(want));
}

}  // namespace unet
