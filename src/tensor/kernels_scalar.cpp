// The scalar level: portable reference kernels (the per-format dot products of
// quant_legacy.cpp / dot_k.cpp / plain_formats.cpp, one row at a time).
#include <algorithm>

#include "frugal/quant.h"
#include "tensor/block_layouts.h"
#include "tensor/kernel_set.h"
#include "tensor/kernels.h"
#include "tensor/ops.h"

namespace frugal {

namespace {

template <float (*Dot)(const void*, const void*, size_t), size_t BlockElements>
void dot_tile_rows(const uint8_t* weights, size_t weight_stride, const uint8_t* activations, size_t activation_stride,
                   size_t n, size_t rows, size_t tokens, float* out, size_t out_stride) {
  const size_t blocks = n / BlockElements;
  for (size_t t = 0; t < tokens; ++t) {
    for (size_t r = 0; r < rows; ++r) {
      out[t * out_stride + r] = Dot(weights + r * weight_stride, activations + t * activation_stride, blocks);
    }
  }
}

template <void (*Quantize)(const float*, void*, size_t), size_t BlockElements>
void quantize_blocks(const float* x, void* out, size_t n) {
  Quantize(x, out, n / BlockElements);
}

void kv_rows_q8_0_scalar(const uint8_t* rows, size_t row_bytes, size_t count, size_t blocks, float* out) {
  for (size_t j = 0; j < count; ++j) {
    for (size_t b = 0; b < blocks; ++b, out += detail::kLegacyBlockElements) {
      const auto block = detail::load_block<detail::BlockQ8_0>(rows + j * row_bytes, b);
      const float d = f16_to_f32(block.d);
      for (size_t i = 0; i < detail::kLegacyBlockElements; ++i) out[i] = d * static_cast<float>(block.qs[i]);
    }
  }
}

void kv_rows_q4_0_scalar(const uint8_t* rows, size_t row_bytes, size_t count, size_t blocks, float* out) {
  for (size_t j = 0; j < count; ++j) {
    for (size_t b = 0; b < blocks; ++b, out += detail::kLegacyBlockElements) {
      const auto block = detail::load_block<detail::BlockQ4_0>(rows + j * row_bytes, b);
      const float d = f16_to_f32(block.d);
      for (size_t i = 0; i < 16; ++i) {
        out[i] = d * static_cast<float>((block.qs[i] & 0x0F) - 8);
        out[i + 16] = d * static_cast<float>((block.qs[i] >> 4) - 8);
      }
    }
  }
}

float dot_f32_scalar(const float* a, const float* b, size_t n) {
  float sum = 0.0f;
  for (size_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void axpy_f32_scalar(float alpha, const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void weighted_sum_f32_scalar(const float* weights, size_t count, const float* rows, size_t row_stride, float* out,
                             size_t n) {
  for (size_t j = 0; j < count; ++j) {
    for (size_t i = 0; i < n; ++i) out[i] += weights[j] * rows[j * row_stride + i];
  }
}

void weighted_sum_f16_scalar(const float* weights, size_t count, const uint16_t* rows, size_t row_stride, float* out,
                             size_t n) {
  for (size_t j = 0; j < count; ++j) {
    for (size_t i = 0; i < n; ++i) out[i] += weights[j] * f16_to_f32(rows[j * row_stride + i]);
  }
}

template <class Key, float (*ToFloat)(Key)>
void key_scores_scalar(const Key* keys, size_t key_stride, size_t count, const float* queries, size_t query_stride,
                       size_t queries_count, size_t head_size, float* scores,
                       size_t score_stride) {
  for (size_t q = 0; q < queries_count; ++q) {
    for (size_t j = 0; j < count; ++j) {
      float sum = 0;
      for (size_t i = 0; i < head_size; ++i) sum += ToFloat(keys[j * key_stride + i]) * queries[q * query_stride + i];
      scores[q * score_stride + j] = sum;
    }
  }
}
float same(float x) { return x; }

template <class Row, void (*One)(const float*, size_t, const Row*, size_t, float*, size_t)>
void weighted_sums_by_one(const float* weights, size_t weight_stride, size_t outputs, size_t count, const Row* rows,
                          size_t row_stride, float* out, size_t out_stride, size_t n) {
  for (size_t o = 0; o < outputs; ++o) One(weights + o * weight_stride, count, rows, row_stride, out + o * out_stride, n);
}

}  // namespace

void install_scalar_kernels(KernelSet& set) {
  namespace d = detail;
  constexpr size_t kLegacy = d::kLegacyBlockElements;
  constexpr size_t kSuper = d::kSuperBlockElements;
  set.dot_tile[type_slot(TensorType::F32)] = dot_tile_rows<d::dot_f32_f32, 1>;
  set.dot_tile[type_slot(TensorType::F16)] = dot_tile_rows<d::dot_f16_f16, 1>;
  set.dot_tile[type_slot(TensorType::BF16)] = dot_tile_rows<d::dot_bf16_bf16, 1>;
  set.dot_tile[type_slot(TensorType::Q4_0)] = dot_tile_rows<d::dot_q4_0_q8_0, kLegacy>;
  set.dot_tile[type_slot(TensorType::Q4_1)] = dot_tile_rows<d::dot_q4_1_q8_1, kLegacy>;
  set.dot_tile[type_slot(TensorType::Q5_0)] = dot_tile_rows<d::dot_q5_0_q8_0, kLegacy>;
  set.dot_tile[type_slot(TensorType::Q5_1)] = dot_tile_rows<d::dot_q5_1_q8_1, kLegacy>;
  set.dot_tile[type_slot(TensorType::Q8_0)] = dot_tile_rows<d::dot_q8_0_q8_0, kLegacy>;
  set.dot_tile[type_slot(TensorType::Q2_K)] = dot_tile_rows<d::dot_q2_k_q8_k, kSuper>;
  set.dot_tile[type_slot(TensorType::Q3_K)] = dot_tile_rows<d::dot_q3_k_q8_k, kSuper>;
  set.dot_tile[type_slot(TensorType::Q4_K)] = dot_tile_rows<d::dot_q4_k_q8_k, kSuper>;
  set.dot_tile[type_slot(TensorType::Q5_K)] = dot_tile_rows<d::dot_q5_k_q8_k, kSuper>;
  set.dot_tile[type_slot(TensorType::Q6_K)] = dot_tile_rows<d::dot_q6_k_q8_k, kSuper>;
  set.quantize_activation[type_slot(TensorType::F32)] = quantize_blocks<d::quantize_f32, 1>;
  set.quantize_activation[type_slot(TensorType::F16)] = quantize_blocks<d::quantize_f16, 1>;
  set.quantize_activation[type_slot(TensorType::BF16)] = quantize_blocks<d::quantize_bf16, 1>;
  set.quantize_activation[type_slot(TensorType::Q8_0)] = quantize_blocks<d::quantize_q8_0, kLegacy>;
  set.quantize_activation[type_slot(TensorType::Q8_1)] = quantize_blocks<d::quantize_q8_1, kLegacy>;
  set.quantize_activation[type_slot(TensorType::Q8_K)] = quantize_blocks<d::quantize_q8_k, kSuper>;
  set.dot_f32 = dot_f32_scalar;
  set.axpy_f32 = axpy_f32_scalar;
  set.rms_norm = rms_norm;
  set.swiglu = swiglu;
  set.softmax = softmax;
  set.weighted_sum_f32 = weighted_sum_f32_scalar;
  set.weighted_sum_f16 = weighted_sum_f16_scalar;
  set.weighted_sums_f32 = weighted_sums_by_one<float, weighted_sum_f32_scalar>;
  set.weighted_sums_f16 = weighted_sums_by_one<uint16_t, weighted_sum_f16_scalar>;
  set.key_scores_f32 = key_scores_scalar<float, same>;
  set.key_scores_f16 = key_scores_scalar<uint16_t, f16_to_f32>;
  set.kv_rows_q8_0 = kv_rows_q8_0_scalar;
  set.kv_rows_q4_0 = kv_rows_q4_0_scalar;
}

}  // namespace frugal
