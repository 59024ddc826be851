// Public entry points of frugal/quant.h: find the kernels of a format, check
// the element count, run them.

#include <string>

#include "frugal/error.h"
#include "frugal/quant.h"
#include "tensor/block_layouts.h"
#include "tensor/kernels.h"

namespace frugal {
namespace {

using DequantizeFn = void (*)(const void*, float*, size_t);
using QuantizeFn = void (*)(const float*, void*, size_t);
using DotFn = float (*)(const void*, const void*, size_t);

struct FormatKernels {
  TensorType type;
  size_t block_elements;
  DequantizeFn dequantize;
  QuantizeFn quantize;
  // Activation format and dot kernel; dot is null for activation-only
  // formats (Q8_1, Q8_K), which are never weights.
  TensorType activation;
  DotFn dot;
};

constexpr size_t kLegacy = detail::kLegacyBlockElements;
constexpr size_t kSuper = detail::kSuperBlockElements;

namespace d = detail;
constexpr FormatKernels kFormats[] = {
    {TensorType::F32, 1, d::dequantize_f32, d::quantize_f32, TensorType::F32, d::dot_f32_f32},
    {TensorType::F16, 1, d::dequantize_f16, d::quantize_f16, TensorType::F16, d::dot_f16_f16},
    {TensorType::BF16, 1, d::dequantize_bf16, d::quantize_bf16, TensorType::BF16, d::dot_bf16_bf16},
    {TensorType::Q4_0, kLegacy, d::dequantize_q4_0, d::quantize_q4_0, TensorType::Q8_0, d::dot_q4_0_q8_0},
    {TensorType::Q4_1, kLegacy, d::dequantize_q4_1, d::quantize_q4_1, TensorType::Q8_1, d::dot_q4_1_q8_1},
    {TensorType::Q5_0, kLegacy, d::dequantize_q5_0, d::quantize_q5_0, TensorType::Q8_0, d::dot_q5_0_q8_0},
    {TensorType::Q5_1, kLegacy, d::dequantize_q5_1, d::quantize_q5_1, TensorType::Q8_1, d::dot_q5_1_q8_1},
    {TensorType::Q8_0, kLegacy, d::dequantize_q8_0, d::quantize_q8_0, TensorType::Q8_0, d::dot_q8_0_q8_0},
    {TensorType::Q8_1, kLegacy, d::dequantize_q8_1, d::quantize_q8_1, TensorType::Q8_1, nullptr},
    {TensorType::Q2_K, kSuper, d::dequantize_q2_k, d::quantize_q2_k, TensorType::Q8_K, d::dot_q2_k_q8_k},
    {TensorType::Q3_K, kSuper, d::dequantize_q3_k, d::quantize_q3_k, TensorType::Q8_K, d::dot_q3_k_q8_k},
    {TensorType::Q4_K, kSuper, d::dequantize_q4_k, d::quantize_q4_k, TensorType::Q8_K, d::dot_q4_k_q8_k},
    {TensorType::Q5_K, kSuper, d::dequantize_q5_k, d::quantize_q5_k, TensorType::Q8_K, d::dot_q5_k_q8_k},
    {TensorType::Q6_K, kSuper, d::dequantize_q6_k, d::quantize_q6_k, TensorType::Q8_K, d::dot_q6_k_q8_k},
    {TensorType::Q8_K, kSuper, d::dequantize_q8_k, d::quantize_q8_k, TensorType::Q8_K, nullptr},
};

// A name for messages even when the id is not a known type.
std::string type_label(TensorType type) {
  for (const auto& format : kFormats) {
    if (format.type == type) return std::string(tensor_type_name(type));
  }
  const auto traits = tensor_type_traits(static_cast<uint32_t>(type));
  if (traits) return std::string(traits->name);
  return "type id " + std::to_string(static_cast<uint32_t>(type));
}

const FormatKernels& kernels_for(TensorType type, const char* operation) {
  for (const auto& format : kFormats) {
    if (format.type == type) return format;
  }
  throw UnsupportedError(std::string(operation) + ": tensor type " + type_label(type) + " is not supported");
}

// Number of blocks in `n` elements; n must fill whole blocks.
size_t block_count(const FormatKernels& format, size_t n, const char* operation) {
  if (n % format.block_elements != 0) {
    throw Error(std::string(operation) + ": " + std::to_string(n) + " elements of " + type_label(format.type) +
                " is not a multiple of its block size " + std::to_string(format.block_elements));
  }
  return n / format.block_elements;
}

const FormatKernels& weight_kernels(TensorType weight_type, const char* operation) {
  const auto& format = kernels_for(weight_type, operation);
  if (!format.dot) {
    throw UnsupportedError(std::string(operation) + ": " + type_label(weight_type) +
                           " is an activation format, not supported for weights");
  }
  return format;
}

}  // namespace

void dequantize_row(TensorType type, const void* src, float* dst, size_t n) {
  const auto& format = kernels_for(type, "dequantize");
  format.dequantize(src, dst, block_count(format, n, "dequantize"));
}

void quantize_row(TensorType type, const float* src, void* dst, size_t n) {
  const auto& format = kernels_for(type, "quantize");
  format.quantize(src, dst, block_count(format, n, "quantize"));
}

TensorType activation_type(TensorType weight_type) {
  return weight_kernels(weight_type, "activation_type").activation;
}

float dot_row(TensorType weight_type, const void* weight_row, const void* activations, size_t n) {
  const auto& format = weight_kernels(weight_type, "dot_row");
  return format.dot(weight_row, activations, block_count(format, n, "dot_row"));
}

}  // namespace frugal
