// Small helpers shared by the AVX2 kernel files (*_avx2.cpp) and, through
// simd_avx512.h, the AVX-512 ones (*_avx512.cpp). Only files compiled with at
// least -mavx2 -mfma -mf16c -mbmi2 (CMakeLists.txt) may include it.
//
// Everything sits in an anonymous namespace: each including file gets its own
// copy, compiled with its own instruction set, and no inline function is
// shared between files (the rule of kernel_set.h).
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#define FRUGAL_INLINE inline __attribute__((always_inline))

namespace frugal {
namespace {

// ------------------------------------------------------------ scalar loads

FRUGAL_INLINE uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

FRUGAL_INLINE uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

FRUGAL_INLINE void store_u16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, sizeof(v)); }

FRUGAL_INLINE float load_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// An fp16 value at p, widened by F16C.
FRUGAL_INLINE float load_f16(const uint8_t* p) { return _cvtsh_ss(load_u16(p)); }

// ------------------------------------------------------------ ymm helpers

FRUGAL_INLINE __m256i load_256(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

FRUGAL_INLINE float horizontal_sum(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

// max_ps returns its second operand when either is NaN.
FRUGAL_INLINE float horizontal_max(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// ------------------------------------------ K-quant scales (dot_kquant_*.cpp)

// Q4_K scales and mins: bytes 0-7 scales, 8-15 mins (ggml's unpacking).
FRUGAL_INLINE __m128i q4k_scales_mins(const uint8_t* packed) {
  uint32_t u[4];
  std::memcpy(u, packed, 12);
  u[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
  const uint32_t mins_low = u[1] & 0x3f3f3f3fu;
  u[1] = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
  u[2] = mins_low;
  u[0] &= 0x3f3f3f3fu;
  // Built in registers: a 16-byte load of the four stores would miss store
  // forwarding and wait for them to retire.
  return _mm_set_epi32(static_cast<int>(u[3]), static_cast<int>(u[2]), static_cast<int>(u[1]), static_cast<int>(u[0]));
}

// Q3_K's 16 scales, -32 applied, as int8 (k_scales.h: low nibbles in bytes
// 0-7, top two bits of scale j at bit 2 * (j / 4) of byte 8 + j % 4).
FRUGAL_INLINE __m128i q3k_scales(const uint8_t* packed) {
  uint64_t low;
  uint32_t top;
  std::memcpy(&low, packed, 8);
  std::memcpy(&top, packed + 8, 4);
  const __m128i x = _mm_cvtsi64_si128(static_cast<long long>(low));
  const __m128i low4 = _mm_set1_epi8(0x0F);
  const __m128i nibbles = _mm_unpacklo_epi64(_mm_and_si128(x, low4), _mm_and_si128(_mm_srli_epi16(x, 4), low4));
  const __m128i high =
      _mm_and_si128(_mm_srlv_epi32(_mm_set1_epi32(static_cast<int>(top)), _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi8(3));
  return _mm_sub_epi8(_mm_or_si128(nibbles, _mm_slli_epi16(high, 4)), _mm_set1_epi8(32));
}

// ------------------------------- AVX2 K-quant chunks (dot_kquant_*_avx2.cpp)

// Moves bit `from` of every byte to bit `to` (other bits need masking after).
FRUGAL_INLINE __m256i move_bits(__m256i x, int from, int to) {
  if (to >= from) return to == from ? x : _mm256_slli_epi16(x, to - from);
  return _mm256_srli_epi16(x, from - to);
}

// Byte-shuffle mask repeating int16 word `word` of each 128-bit lane.
FRUGAL_INLINE __m256i word_mask(int word) { return _mm256_set1_epi16(static_cast<int16_t>(((2 * word + 1) << 8) | (2 * word))); }

// Words 0-7 = word `first` of the 128-bit lane, words 8-15 = word first + 1.
FRUGAL_INLINE __m256i word_pair_mask(int first) {
  const __m128i lo = _mm_set1_epi16(static_cast<int16_t>(((2 * first + 1) << 8) | (2 * first)));
  const __m128i hi = _mm_set1_epi16(static_cast<int16_t>(((2 * first + 3) << 8) | (2 * first + 2)));
  return _mm256_set_m128i(hi, lo);
}

// sum += scale * dot(levels, activations), 8 int32 lanes.
FRUGAL_INLINE __m256i dot_scaled(__m256i sum, __m256i levels, const uint8_t* activations, __m256i scale) {
  return _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(levels, load_256(activations)), scale));
}

// sum += scale * dot(levels, activations) for signed levels (Q6_K, Q3_K):
// ggml's sign trick, |levels| against activations carrying the levels' signs,
// so each int16 pair is the exact sum of its products. (Subtracting the level
// offset through the bsums instead would leave lanes far larger than the
// result, and their float rounding would not be bounded by sum |w * a|.)
FRUGAL_INLINE __m256i dot_signed_scaled(__m256i sum, __m256i levels, __m256i magnitudes, const uint8_t* activations,
                                        __m256i scale) {
  const __m256i signed_activations = _mm256_sign_epi8(load_256(activations), levels);
  return _mm256_add_epi32(sum, _mm256_madd_epi16(_mm256_maddubs_epi16(magnitudes, signed_activations), scale));
}

}  // namespace
}  // namespace frugal
