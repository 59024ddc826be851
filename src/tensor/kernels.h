// Per-format scalar kernels behind the public functions in frugal/quant.h.
// Each works on whole blocks: `blocks` counts blocks (elements for the plain
// F32/F16/BF16 formats); callers have already checked the element count.
//
// Dot kernels take a weight row and an activation row in the format ggml pairs
// with it, and follow ggml's `ggml_vec_dot_<w>_<a>` arithmetic: integer sums
// inside a block, block scales applied in float.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace frugal::detail {

// The block structs are little-endian byte images, used in place.
static_assert(std::endian::native == std::endian::little, "frugal assumes a little-endian host");

// Plain formats (plain_formats.cpp).
void dequantize_f32(const void* src, float* dst, size_t count);
void quantize_f32(const float* src, void* dst, size_t count);
float dot_f32_f32(const void* weights, const void* activations, size_t count);
void dequantize_f16(const void* src, float* dst, size_t count);
void quantize_f16(const float* src, void* dst, size_t count);
float dot_f16_f16(const void* weights, const void* activations, size_t count);
void dequantize_bf16(const void* src, float* dst, size_t count);
void quantize_bf16(const float* src, void* dst, size_t count);
float dot_bf16_bf16(const void* weights, const void* activations, size_t count);

// Legacy 32-element block formats (quant_legacy.cpp).
void dequantize_q4_0(const void* src, float* dst, size_t blocks);
void dequantize_q4_1(const void* src, float* dst, size_t blocks);
void dequantize_q5_0(const void* src, float* dst, size_t blocks);
void dequantize_q5_1(const void* src, float* dst, size_t blocks);
void dequantize_q8_0(const void* src, float* dst, size_t blocks);
void dequantize_q8_1(const void* src, float* dst, size_t blocks);
void quantize_q4_0(const float* src, void* dst, size_t blocks);
void quantize_q4_1(const float* src, void* dst, size_t blocks);
void quantize_q5_0(const float* src, void* dst, size_t blocks);
void quantize_q5_1(const float* src, void* dst, size_t blocks);
void quantize_q8_0(const float* src, void* dst, size_t blocks);
void quantize_q8_1(const float* src, void* dst, size_t blocks);
float dot_q4_0_q8_0(const void* weights, const void* activations, size_t blocks);
float dot_q4_1_q8_1(const void* weights, const void* activations, size_t blocks);
float dot_q5_0_q8_0(const void* weights, const void* activations, size_t blocks);
float dot_q5_1_q8_1(const void* weights, const void* activations, size_t blocks);
float dot_q8_0_q8_0(const void* weights, const void* activations, size_t blocks);

// K formats, 256-element super-blocks (quant_k.cpp, dot_k.cpp).
void dequantize_q2_k(const void* src, float* dst, size_t blocks);
void dequantize_q3_k(const void* src, float* dst, size_t blocks);
void dequantize_q4_k(const void* src, float* dst, size_t blocks);
void dequantize_q5_k(const void* src, float* dst, size_t blocks);
void dequantize_q6_k(const void* src, float* dst, size_t blocks);
void dequantize_q8_k(const void* src, float* dst, size_t blocks);
void quantize_q2_k(const float* src, void* dst, size_t blocks);
void quantize_q3_k(const float* src, void* dst, size_t blocks);
void quantize_q4_k(const float* src, void* dst, size_t blocks);
void quantize_q5_k(const float* src, void* dst, size_t blocks);
void quantize_q6_k(const float* src, void* dst, size_t blocks);
void quantize_q8_k(const float* src, void* dst, size_t blocks);
float dot_q2_k_q8_k(const void* weights, const void* activations, size_t blocks);
float dot_q3_k_q8_k(const void* weights, const void* activations, size_t blocks);
float dot_q4_k_q8_k(const void* weights, const void* activations, size_t blocks);
float dot_q5_k_q8_k(const void* weights, const void* activations, size_t blocks);
float dot_q6_k_q8_k(const void* weights, const void* activations, size_t blocks);

// ggml's nearest_int: round half to even via the 1.5 * 2^23 trick, so K-quant
// scales and levels come out bit-identical to ggml's. Valid for |v| < 2^22.
inline int nearest_int(float v) {
  const float shifted = v + 12582912.f;
  return static_cast<int>(std::bit_cast<uint32_t>(shifted) & 0x007fffffu) - 0x00400000;
}

// The value with the largest magnitude (sign kept; first one on ties), as the
// symmetric ggml quantizers pick it.
inline float signed_absmax(const float* x, size_t n) {
  float amax = 0.0f;
  float max = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    const float ax = x[i] < 0 ? -x[i] : x[i];
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  return max;
}

}  // namespace frugal::detail
