// Dot products of K-format weight rows with Q8_K activations, as ggml's
// `ggml_vec_dot_<w>_q8_K_generic`: per super-block, integer sums of level *
// activation per sub-block weighted by the integer sub-block scales; the
// float super-block scales (and the min correction through Q8_K's bsums)
// are applied once per super-block.
//
// Levels are decoded per element from the layout formulas (block_layouts.h)
// rather than with the dequantizers' loops, so tests comparing the two check
// the element order twice over.

#include <cstdint>

#include "frugal/quant.h"
#include "tensor/block_layouts.h"
#include "tensor/k_scales.h"
#include "tensor/kernels.h"

namespace frugal::detail {
namespace {

constexpr int kSuper = static_cast<int>(kSuperBlockElements);

// Element e of a 2-bit packed qs (Q2_K, Q3_K): bits 2*((e%128)/32) of
// qs[32*(e/128) + e%32].
int two_bit_level(const uint8_t* qs, int e) { return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3; }

// Element e of a Q4_K/Q5_K nibble array: 64-element chunks, first 32 in the
// low nibbles of the chunk's 32 bytes, next 32 in the high nibbles.
int nibble_level(const uint8_t* qs, int e) {
  const uint8_t byte = qs[32 * (e / 64) + e % 32];
  return (e % 64) < 32 ? (byte & 0x0F) : (byte >> 4);
}

// Sum over one sub-block of `count` elements starting at `first`.
int sub_block_sum(const int8_t* levels, const int8_t* activations, int first, int count) {
  int sum = 0;
  for (int e = first; e < first + count; ++e) sum += levels[e] * activations[e];
  return sum;
}

// sum over the 16 bsums groups of bsums[g] * min of the sub-block holding g.
int min_correction(const int16_t* bsums, const uint8_t* mins, int groups_per_sub_block) {
  int sum = 0;
  for (int g = 0; g < 16; ++g) sum += bsums[g] * mins[g / groups_per_sub_block];
  return sum;
}

}  // namespace

float dot_q2_k_q8_k(const void* weights, const void* activations, size_t blocks) {
  float sum = 0.0f;
  for (size_t i = 0; i < blocks; ++i) {
    const auto w = load_block<BlockQ2_K>(weights, i);
    const auto a = load_block<BlockQ8_K>(activations, i);
    int8_t levels[kSuper];
    for (int e = 0; e < kSuper; ++e) levels[e] = static_cast<int8_t>(two_bit_level(w.qs, e));
    int isum = 0;
    uint8_t mins[16];
    for (int j = 0; j < 16; ++j) {
      isum += (w.scales[j] & 0x0F) * sub_block_sum(levels, a.qs, 16 * j, 16);
      mins[j] = static_cast<uint8_t>(w.scales[j] >> 4);
    }
    const int min_sum = min_correction(a.bsums, mins, 1);
    const float dall = a.d * f16_to_f32(w.d);
    const float dmin = a.d * f16_to_f32(w.dmin);
    sum += dall * isum - dmin * min_sum;
  }
  return sum;
}

float dot_q3_k_q8_k(const void* weights, const void* activations, size_t blocks) {
  float sum = 0.0f;
  for (size_t i = 0; i < blocks; ++i) {
    const auto w = load_block<BlockQ3_K>(weights, i);
    const auto a = load_block<BlockQ8_K>(activations, i);
    int8_t levels[kSuper];
    for (int e = 0; e < kSuper; ++e) {
      const bool high = (w.hmask[e % 32] >> (e / 32)) & 1;
      levels[e] = static_cast<int8_t>(two_bit_level(w.qs, e) - (high ? 0 : 4));
    }
    int isum = 0;
    for (int j = 0; j < 16; ++j) isum += q3_k_scale(w.scales, j) * sub_block_sum(levels, a.qs, 16 * j, 16);
    sum += f16_to_f32(w.d) * a.d * isum;
  }
  return sum;
}

namespace {

// Shared by Q4_K and Q5_K once levels are decoded.
float dot_k4_levels(const int8_t* levels, uint16_t d, uint16_t dmin, const uint8_t* packed_scales,
                    const BlockQ8_K& a) {
  uint8_t scales[8];
  uint8_t mins[8];
  for (int j = 0; j < 8; ++j) unpack_scale_min_k4(j, packed_scales, &scales[j], &mins[j]);
  int isum = 0;
  for (int j = 0; j < 8; ++j) isum += scales[j] * sub_block_sum(levels, a.qs, 32 * j, 32);
  const int min_sum = min_correction(a.bsums, mins, 2);
  return f16_to_f32(d) * a.d * isum - f16_to_f32(dmin) * a.d * min_sum;
}

}  // namespace

float dot_q4_k_q8_k(const void* weights, const void* activations, size_t blocks) {
  float sum = 0.0f;
  for (size_t i = 0; i < blocks; ++i) {
    const auto w = load_block<BlockQ4_K>(weights, i);
    const auto a = load_block<BlockQ8_K>(activations, i);
    int8_t levels[kSuper];
    for (int e = 0; e < kSuper; ++e) levels[e] = static_cast<int8_t>(nibble_level(w.qs, e));
    sum += dot_k4_levels(levels, w.d, w.dmin, w.scales, a);
  }
  return sum;
}

float dot_q5_k_q8_k(const void* weights, const void* activations, size_t blocks) {
  float sum = 0.0f;
  for (size_t i = 0; i < blocks; ++i) {
    const auto w = load_block<BlockQ5_K>(weights, i);
    const auto a = load_block<BlockQ8_K>(activations, i);
    int8_t levels[kSuper];
    for (int e = 0; e < kSuper; ++e) {
      const int high = (w.qh[e % 32] >> (e / 32)) & 1;
      levels[e] = static_cast<int8_t>(nibble_level(w.qs, e) | (high << 4));
    }
    sum += dot_k4_levels(levels, w.d, w.dmin, w.scales, a);
  }
  return sum;
}

float dot_q6_k_q8_k(const void* weights, const void* activations, size_t blocks) {
  float sum = 0.0f;
  for (size_t i = 0; i < blocks; ++i) {
    const auto w = load_block<BlockQ6_K>(weights, i);
    const auto a = load_block<BlockQ8_K>(activations, i);
    int8_t levels[kSuper];
    for (int e = 0; e < kSuper; ++e) {
      const int half = e / 128;
      const int k = (e % 128) / 32;  // which of the four 32-element rows
      const int l = e % 32;
      const uint8_t low_byte = w.ql[64 * half + 32 * (k & 1) + l];
      const int low = k < 2 ? (low_byte & 0x0F) : (low_byte >> 4);
      const int high = (w.qh[32 * half + l] >> (2 * k)) & 3;
      levels[e] = static_cast<int8_t>((low | (high << 4)) - 32);
    }
    int isum = 0;
    for (int j = 0; j < 16; ++j) isum += w.scales[j] * sub_block_sum(levels, a.qs, 16 * j, 16);
    sum += f16_to_f32(w.d) * a.d * isum;
  }
  return sum;
}

}  // namespace frugal::detail
