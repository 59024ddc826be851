// F32, F16 and BF16 rows: element-wise conversion, and the dot products ggml
// uses for them (F16/BF16 weights meet activations rounded to the same type).

#include <cstdint>
#include <cstring>

#include "frugal/quant.h"
#include "tensor/kernels.h"

namespace frugal::detail {
namespace {

// Rows may be unaligned in a mapped file; read each 16-bit element by memcpy.
uint16_t load_u16(const void* row, size_t index) {
  uint16_t value;
  std::memcpy(&value, static_cast<const unsigned char*>(row) + 2 * index, 2);
  return value;
}

void store_u16(void* row, size_t index, uint16_t value) {
  std::memcpy(static_cast<unsigned char*>(row) + 2 * index, &value, 2);
}

float load_f32(const void* row, size_t index) {
  float value;
  std::memcpy(&value, static_cast<const unsigned char*>(row) + 4 * index, 4);
  return value;
}

}  // namespace

void dequantize_f32(const void* src, float* dst, size_t count) { std::memcpy(dst, src, count * sizeof(float)); }

void quantize_f32(const float* src, void* dst, size_t count) { std::memcpy(dst, src, count * sizeof(float)); }

float dot_f32_f32(const void* weights, const void* activations, size_t count) {
  float sum = 0.0f;
  for (size_t i = 0; i < count; ++i) sum += load_f32(weights, i) * load_f32(activations, i);
  return sum;
}

void dequantize_f16(const void* src, float* dst, size_t count) {
  for (size_t i = 0; i < count; ++i) dst[i] = f16_to_f32(load_u16(src, i));
}

void quantize_f16(const float* src, void* dst, size_t count) {
  for (size_t i = 0; i < count; ++i) store_u16(dst, i, f32_to_f16(src[i]));
}

float dot_f16_f16(const void* weights, const void* activations, size_t count) {
  float sum = 0.0f;
  for (size_t i = 0; i < count; ++i) {
    sum += f16_to_f32(load_u16(weights, i)) * f16_to_f32(load_u16(activations, i));
  }
  return sum;
}

void dequantize_bf16(const void* src, float* dst, size_t count) {
  for (size_t i = 0; i < count; ++i) dst[i] = bf16_to_f32(load_u16(src, i));
}

void quantize_bf16(const float* src, void* dst, size_t count) {
  for (size_t i = 0; i < count; ++i) store_u16(dst, i, f32_to_bf16(src[i]));
}

float dot_bf16_bf16(const void* weights, const void* activations, size_t count) {
  float sum = 0.0f;
  for (size_t i = 0; i < count; ++i) {
    sum += bf16_to_f32(load_u16(weights, i)) * bf16_to_f32(load_u16(activations, i));
  }
  return sum;
}

}  // namespace frugal::detail
