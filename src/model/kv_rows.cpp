#include "model/kv_rows.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "frugal/quant.h"
#include "tensor/block_layouts.h"

namespace frugal {

namespace {

// Q4_0's layout, the scale that minimizes the block's squared error among
// a few candidate steps (ggml's Q4_0 maps the largest value to -8 and keeps
// that step whatever it costs the others).
void quantize_q4_h_block(const float* x, detail::BlockQ4_0& block) {
  constexpr size_t n = kKvQuantBlock;
  float max = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > std::fabs(max)) max = x[i];
  }
  uint8_t best[n];
  std::fill(best, best + n, uint8_t{8});
  float best_scale = 0.0f;
  if (max != 0.0f) {
    float best_error = std::numeric_limits<float>::infinity();
    for (int step = -6; step <= 6; ++step) {
      const float inverse = -(8.0f + 0.25f * static_cast<float>(step)) / max;
      uint8_t q[n];
      float xl = 0.0f, ll = 0.0f;
      for (size_t i = 0; i < n; ++i) {
        const float level = std::clamp(std::nearbyint(x[i] * inverse), -8.0f, 7.0f);
        q[i] = static_cast<uint8_t>(level + 8.0f);
        xl += x[i] * level;
        ll += level * level;
      }
      const float scale = f16_to_f32(f32_to_f16(xl / ll));  // as it will be read
      float error = 0.0f;
      for (size_t i = 0; i < n; ++i) {
        const float e = x[i] - scale * (static_cast<float>(q[i]) - 8.0f);
        error += e * e;
      }
      if (error < best_error) {
        best_error = error;
        best_scale = scale;
        std::copy(q, q + n, best);
      }
    }
  }
  block.d = f32_to_f16(best_scale);
  for (size_t i = 0; i < n / 2; ++i) block.qs[i] = static_cast<uint8_t>(best[i] | (best[i + n / 2] << 4));
}

}  // namespace

void rotate_kv_blocks(float* x, size_t n) {
  const float norm = 1.0f / std::sqrt(static_cast<float>(kKvQuantBlock));
  for (size_t start = 0; start + kKvQuantBlock <= n; start += kKvQuantBlock) {
    float* b = x + start;
    for (size_t half = 1; half < kKvQuantBlock; half *= 2) {  // fast Walsh-Hadamard butterflies
      for (size_t i = 0; i < kKvQuantBlock; i += 2 * half) {
        for (size_t j = i; j < i + half; ++j) {
          const float a = b[j], c = b[j + half];
          b[j] = a + c;
          b[j + half] = a - c;
        }
      }
    }
    for (size_t i = 0; i < kKvQuantBlock; ++i) b[i] *= norm;
  }
}

void store_kv_row(const float* src, void* dst, size_t n, KvPrecision precision) {
  switch (precision) {
    case KvPrecision::F32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case KvPrecision::F16: {
      auto* out = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) out[i] = f32_to_f16(src[i]);
      return;
    }
    case KvPrecision::Q8_0:
      quantize_row(TensorType::Q8_0, src, dst, n);
      return;
    case KvPrecision::Q4_0:
      quantize_row(TensorType::Q4_0, src, dst, n);
      return;
    case KvPrecision::Q4_H: {
      auto* out = static_cast<uint8_t*>(dst);
      for (size_t b = 0; b < n / kKvQuantBlock; ++b) {
        float turned[kKvQuantBlock];
        std::copy(src + b * kKvQuantBlock, src + (b + 1) * kKvQuantBlock, turned);
        rotate_kv_blocks(turned, kKvQuantBlock);
        detail::BlockQ4_0 block{};
        quantize_q4_h_block(turned, block);
        std::memcpy(out + b * sizeof(block), &block, sizeof(block));
      }
      return;
    }
  }
}

void load_kv_row(const void* src, KvPrecision precision, float* dst, size_t n) {
  switch (precision) {
    case KvPrecision::F32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case KvPrecision::F16:
      dequantize_row(TensorType::F16, src, dst, n);
      return;
    case KvPrecision::Q8_0:
      dequantize_row(TensorType::Q8_0, src, dst, n);
      return;
    case KvPrecision::Q4_0:
    case KvPrecision::Q4_H:
      dequantize_row(TensorType::Q4_0, src, dst, n);
      if (kv_rotated(precision)) rotate_kv_blocks(dst, n);
      return;
  }
}

void convert_kv_row(const void* src, KvPrecision from, void* dst, KvPrecision to, size_t n) {
  if (from == to) {
    std::memcpy(dst, src, kv_bytes(from, n));
    return;
  }
  thread_local std::vector<float> row;
  row.resize(n);
  load_kv_row(src, from, row.data(), n);
  store_kv_row(row.data(), dst, n, to);
}

}  // namespace frugal
