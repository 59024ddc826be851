// Conversion between F32 and the stored tensor formats, and the scalar
// reference dot products the model uses (fast SIMD kernels come later and are
// tested against these).
//
// Dot products follow ggml's scheme so results match the reference engine:
// a weight row in type W is multiplied with activations converted to
// `activation_type(W)` (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for
// the K-quants, F16 for F16, BF16 for BF16, F32 for F32), using integer dot
// products inside blocks where the formats allow.
#pragma once

#include <cstddef>
#include <cstdint>

#include "frugal/tensor_type.h"

namespace frugal {

// `n` must be a multiple of the block size of `type`.
void dequantize_row(TensorType type, const void* src, float* dst, size_t n);
// Round-to-nearest reference quantization (as ggml's `quantize_row_*_ref`).
// Supported for every type `dequantize_row` supports, plus Q8_1 and Q8_K.
void quantize_row(TensorType type, const float* src, void* dst, size_t n);

// The format activations are converted to before a dot product with a
// weight row of type `weight_type`.
TensorType activation_type(TensorType weight_type);
// Dot product of a weight row (`weight_type`) with activations already in
// `activation_type(weight_type)`.
float dot_row(TensorType weight_type, const void* weight_row, const void* activations, size_t n);

// Half-precision helpers (IEEE binary16 and bfloat16), round-to-nearest-even.
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

}  // namespace frugal
