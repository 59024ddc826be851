// Legacy 32-element block formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.
// Quantizers follow ggml's `quantize_row_*_ref` (round to nearest, one scale
// per block) and dot products ggml's `ggml_vec_dot_*_generic`, so files and
// results agree with ggml.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "frugal/quant.h"
#include "tensor/block_layouts.h"
#include "tensor/kernels.h"

namespace frugal::detail {
namespace {

constexpr int kBlock = static_cast<int>(kLegacyBlockElements);
constexpr int kHalf = kBlock / 2;

uint32_t load_qh(const uint8_t (&qh)[4]) {
  uint32_t bits;
  std::memcpy(&bits, qh, sizeof(bits));
  return bits;
}

void store_qh(uint8_t (&qh)[4], uint32_t bits) { std::memcpy(qh, &bits, sizeof(bits)); }

// Fifth bit of element j (0..31) of a Q5 block.
int q5_high_bit(uint32_t qh, int j) { return static_cast<int>((qh >> j) & 1u) << 4; }

struct MinMax {
  float min;
  float max;
};

MinMax min_max(const float* x) {
  MinMax range{std::numeric_limits<float>::max(), -std::numeric_limits<float>::max()};
  for (int j = 0; j < kBlock; ++j) {
    if (x[j] < range.min) range.min = x[j];
    if (x[j] > range.max) range.max = x[j];
  }
  return range;
}

}  // namespace

// ---------------------------------------------------------------- dequantize

void dequantize_q4_0(const void* src, float* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    const auto block = load_block<BlockQ4_0>(src, i);
    const float d = f16_to_f32(block.d);
    float* y = dst + i * kBlock;
    for (int j = 0; j < kHalf; ++j) {
      y[j] = ((block.qs[j] & 0x0F) - 8) * d;
      y[j + kHalf] = ((block.qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const void* src, float* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    const auto block = load_block<BlockQ4_1>(src, i);
    const float d = f16_to_f32(block.d);
    const float m = f16_to_f32(block.m);
    float* y = dst + i * kBlock;
    for (int j = 0; j < kHalf; ++j) {
      y[j] = (block.qs[j] & 0x0F) * d + m;
      y[j + kHalf] = (block.qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_q5_0(const void* src, float* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    const auto block = load_block<BlockQ5_0>(src, i);
    const float d = f16_to_f32(block.d);
    const uint32_t qh = load_qh(block.qh);
    float* y = dst + i * kBlock;
    for (int j = 0; j < kHalf; ++j) {
      y[j] = (((block.qs[j] & 0x0F) | q5_high_bit(qh, j)) - 16) * d;
      y[j + kHalf] = (((block.qs[j] >> 4) | q5_high_bit(qh, j + kHalf)) - 16) * d;
    }
  }
}

void dequantize_q5_1(const void* src, float* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    const auto block = load_block<BlockQ5_1>(src, i);
    const float d = f16_to_f32(block.d);
    const float m = f16_to_f32(block.m);
    const uint32_t qh = load_qh(block.qh);
    float* y = dst + i * kBlock;
    for (int j = 0; j < kHalf; ++j) {
      y[j] = ((block.qs[j] & 0x0F) | q5_high_bit(qh, j)) * d + m;
      y[j + kHalf] = ((block.qs[j] >> 4) | q5_high_bit(qh, j + kHalf)) * d + m;
    }
  }
}

void dequantize_q8_0(const void* src, float* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    const auto block = load_block<BlockQ8_0>(src, i);
    const float d = f16_to_f32(block.d);
    for (int j = 0; j < kBlock; ++j) dst[i * kBlock + j] = block.qs[j] * d;
  }
}

void dequantize_q8_1(const void* src, float* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    const auto block = load_block<BlockQ8_1>(src, i);
    const float d = f16_to_f32(block.d);
    for (int j = 0; j < kBlock; ++j) dst[i * kBlock + j] = block.qs[j] * d;
  }
}

// ------------------------------------------------------------------ quantize

namespace {

// The block itself when every value is finite; otherwise a copy in `copy`
// with NaN and infinities as 0, so the float-to-int conversions below stay
// defined for a broken input.
const float* finite_block(const float* x, float* copy) {
  bool all_finite = true;
  for (int j = 0; j < kBlock; ++j) all_finite = all_finite && std::isfinite(x[j]);
  if (all_finite) return x;
  for (int j = 0; j < kBlock; ++j) copy[j] = std::isfinite(x[j]) ? x[j] : 0.0f;
  return copy;
}

}  // namespace

namespace {

// Levels of one block by ggml's reference rounding (truncation of v + 0.5,
// capped at `max_level`), shared by the 4- and 5-bit formats.
//  - symmetric (Q4_0, Q5_0): value = d * (q - half), half = (max_level + 1) / 2;
//    the largest-magnitude value maps to -half exactly, using the full range
//    on its side (v >= -half keeps the truncation argument >= 0);
//  - with a minimum (Q4_1, Q5_1): value = d * q + min.
float symmetric_levels(const float* x, int max_level, int* q) {
  const float half = static_cast<float>((max_level + 1) / 2);
  const float d = signed_absmax(x, kBlock) / -half;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < kBlock; ++j) q[j] = std::min(max_level, static_cast<int>(x[j] * id + (half + 0.5f)));
  return d;
}

MinMax levels_above_minimum(const float* x, int max_level, int* q, float* d_out) {
  const MinMax range = min_max(x);
  const float d = (range.max - range.min) / static_cast<float>(max_level);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  // ggml does not clamp here; (max - min) * id rounds to at most max_level.
  for (int j = 0; j < kBlock; ++j) q[j] = std::min(max_level, static_cast<int>((x[j] - range.min) * id + 0.5f));
  *d_out = d;
  return range;
}

// Element j in the low nibble of qs[j], element j + 16 in the high nibble;
// for 5-bit levels bit 4 of element j goes to bit j of the returned qh.
uint32_t pack_levels(const int* q, uint8_t* qs) {
  uint32_t qh = 0;
  for (int j = 0; j < kHalf; ++j) {
    qs[j] = static_cast<uint8_t>((q[j] & 0x0F) | ((q[j + kHalf] & 0x0F) << 4));
    qh |= static_cast<uint32_t>(q[j] >> 4) << j;
    qh |= static_cast<uint32_t>(q[j + kHalf] >> 4) << (j + kHalf);
  }
  return qh;
}

}  // namespace

void quantize_q4_0(const float* src, void* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    float finite[kBlock];
    int q[kBlock];
    BlockQ4_0 block{};
    block.d = f32_to_f16(symmetric_levels(finite_block(src + i * kBlock, finite), 15, q));
    pack_levels(q, block.qs);
    store_block(dst, i, block);
  }
}

void quantize_q4_1(const float* src, void* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    float finite[kBlock];
    int q[kBlock];
    float d;
    const MinMax range = levels_above_minimum(finite_block(src + i * kBlock, finite), 15, q, &d);
    BlockQ4_1 block{};
    block.d = f32_to_f16(d);
    block.m = f32_to_f16(range.min);
    pack_levels(q, block.qs);
    store_block(dst, i, block);
  }
}

void quantize_q5_0(const float* src, void* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    float finite[kBlock];
    int q[kBlock];
    BlockQ5_0 block{};
    block.d = f32_to_f16(symmetric_levels(finite_block(src + i * kBlock, finite), 31, q));
    store_qh(block.qh, pack_levels(q, block.qs));
    store_block(dst, i, block);
  }
}

void quantize_q5_1(const float* src, void* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    float finite[kBlock];
    int q[kBlock];
    float d;
    const MinMax range = levels_above_minimum(finite_block(src + i * kBlock, finite), 31, q, &d);
    BlockQ5_1 block{};
    block.d = f32_to_f16(d);
    block.m = f32_to_f16(range.min);
    store_qh(block.qh, pack_levels(q, block.qs));
    store_block(dst, i, block);
  }
}

namespace {

// Symmetric 8-bit quantization of one block; returns the unrounded scale and
// fills `qs`. Shared by Q8_0 and Q8_1.
float quantize_8bit_block(const float* x, int8_t* qs) {
  float amax = 0.0f;
  for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
  // As ggml's x86 SIMD quantizer (the path the reference engine runs for
  // activations): scale by 127 / amax and round half to even. ggml's scalar
  // reference (1 / d, round half away) differs in the last bit at ties,
  // and such flips grow through a network into visible logit differences.
  const float d = amax / 127;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  for (int j = 0; j < kBlock; ++j) {
    // Non-finite inputs (a broken model) become 0 instead of undefined
    // float-to-int conversions.
    const float v = std::nearbyint(x[j] * id);
    qs[j] = v >= -127.0f && v <= 127.0f ? static_cast<int8_t>(v) : 0;
  }
  return d;
}

}  // namespace

void quantize_q8_0(const float* src, void* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    BlockQ8_0 block{};
    block.d = f32_to_f16(quantize_8bit_block(src + i * kBlock, block.qs));
    store_block(dst, i, block);
  }
}

void quantize_q8_1(const float* src, void* dst, size_t blocks) {
  for (size_t i = 0; i < blocks; ++i) {
    BlockQ8_1 block{};
    const float d = quantize_8bit_block(src + i * kBlock, block.qs);
    int sum = 0;
    for (int j = 0; j < kBlock; ++j) sum += block.qs[j];
    block.d = f32_to_f16(d);
    block.s = f32_to_f16(static_cast<float>(sum) * d);  // ggml uses the unrounded d here
    store_block(dst, i, block);
  }
}

// ---------------------------------------------------------------------- dot

float dot_q4_0_q8_0(const void* weights, const void* activations, size_t blocks) {
  float sum = 0.0f;
  for (size_t i = 0; i < blocks; ++i) {
    const auto w = load_block<BlockQ4_0>(weights, i);
    const auto a = load_block<BlockQ8_0>(activations, i);
    int isum = 0;
    for (int j = 0; j < kHalf; ++j) {
      isum += ((w.qs[j] & 0x0F) - 8) * a.qs[j];
      isum += ((w.qs[j] >> 4) - 8) * a.qs[j + kHalf];
    }
    sum += f16_to_f32(w.d) * f16_to_f32(a.d) * static_cast<float>(isum);
  }
  return sum;
}

float dot_q4_1_q8_1(const void* weights, const void* activations, size_t blocks) {
  float sum = 0.0f;
  for (size_t i = 0; i < blocks; ++i) {
    const auto w = load_block<BlockQ4_1>(weights, i);
    const auto a = load_block<BlockQ8_1>(activations, i);
    int isum = 0;
    for (int j = 0; j < kHalf; ++j) {
      isum += (w.qs[j] & 0x0F) * a.qs[j];
      isum += (w.qs[j] >> 4) * a.qs[j + kHalf];
    }
    // sum((q*d + m) * a) = d*da*sum(q*qa) + m * (da*sum(qa)), the last factor being s.
    sum += (f16_to_f32(w.d) * f16_to_f32(a.d)) * isum + f16_to_f32(w.m) * f16_to_f32(a.s);
  }
  return sum;
}

float dot_q5_0_q8_0(const void* weights, const void* activations, size_t blocks) {
  float sum = 0.0f;
  for (size_t i = 0; i < blocks; ++i) {
    const auto w = load_block<BlockQ5_0>(weights, i);
    const auto a = load_block<BlockQ8_0>(activations, i);
    const uint32_t qh = load_qh(w.qh);
    int isum = 0;
    for (int j = 0; j < kHalf; ++j) {
      isum += (((w.qs[j] & 0x0F) | q5_high_bit(qh, j)) - 16) * a.qs[j];
      isum += (((w.qs[j] >> 4) | q5_high_bit(qh, j + kHalf)) - 16) * a.qs[j + kHalf];
    }
    sum += (f16_to_f32(w.d) * f16_to_f32(a.d)) * isum;
  }
  return sum;
}

float dot_q5_1_q8_1(const void* weights, const void* activations, size_t blocks) {
  float sum = 0.0f;
  for (size_t i = 0; i < blocks; ++i) {
    const auto w = load_block<BlockQ5_1>(weights, i);
    const auto a = load_block<BlockQ8_1>(activations, i);
    const uint32_t qh = load_qh(w.qh);
    int isum = 0;
    for (int j = 0; j < kHalf; ++j) {
      isum += ((w.qs[j] & 0x0F) | q5_high_bit(qh, j)) * a.qs[j];
      isum += ((w.qs[j] >> 4) | q5_high_bit(qh, j + kHalf)) * a.qs[j + kHalf];
    }
    sum += (f16_to_f32(w.d) * f16_to_f32(a.d)) * isum + f16_to_f32(w.m) * f16_to_f32(a.s);
  }
  return sum;
}

float dot_q8_0_q8_0(const void* weights, const void* activations, size_t blocks) {
  float sum = 0.0f;
  for (size_t i = 0; i < blocks; ++i) {
    const auto w = load_block<BlockQ8_0>(weights, i);
    const auto a = load_block<BlockQ8_0>(activations, i);
    int isum = 0;
    for (int j = 0; j < kBlock; ++j) isum += w.qs[j] * a.qs[j];
    sum += isum * (f16_to_f32(w.d) * f16_to_f32(a.d));
  }
  return sum;
}

}  // namespace frugal::detail
