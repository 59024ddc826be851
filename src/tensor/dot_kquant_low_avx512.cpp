// avx512 kernels for Q2_K and Q3_K weights against Q8_K activations (see
// kernel_set.h for the rules, dot_kquant_avx512.cpp for the scheme: 64-element
// chunks of unsigned levels, vpdpbusd + vpdpwssd with per-dword sub-block
// scales, mins through the Q8_K bsums).
//  - Q3_K levels: q = (low 2 bits | hmask bit << 2) - 4, signed, against
//    unsigned activations a + 128 (see dot_signed_scaled);
//  - Q2_K's mins are sum(min * bsum) with the dmin factor.
//
// GCC 12's AVX-512 headers trip -Wuninitialized inside their own intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "frugal/tensor_type.h"
#include "tensor/dot_kquant_simd.h"
#include "tensor/kernel_set.h"
#include "tensor/simd_avx512.h"

namespace frugal {

namespace {

// Chunk c (elements 64c..64c+63) of a 2-bit array laid out as Q2_K/Q3_K qs:
// bits 2k of qs[32h + l], h = c / 2, k = 2 (c & 1) (first half), k + 1
// (second half); returned in the low 2 bits of each byte, others unmasked.
FRUGAL_INLINE __m512i two_bit_chunk(const uint8_t* qs, int c) {
  const int k = 2 * (c & 1);
  const __m512i rotate = halves_epi32((32 - 2 * k) & 31, (30 - 2 * k) & 31);
  return _mm512_rolv_epi32(broadcast_256(qs + 32 * (c / 2)), rotate);
}

// ---------------------------------------------------------------------- Q3_K

// Block: hmask[32], qs[64], scales[12], d.
struct Q3K {
  static constexpr size_t kTokens = 8;
  static constexpr size_t kBytes = 110;

  template <size_t T>
  static void run(const uint8_t* w, const uint8_t* act, size_t act_stride, size_t blocks, float* out,
                  size_t out_stride) {
    __m512 acc[T];
    #pragma GCC unroll 8
    for (size_t t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    const __m512i low2 = _mm512_set1_epi8(0x03);
    const __m512i bit2 = _mm512_set1_epi8(0x04);
    const __m512i low16 = _mm512_set1_epi32(0xFFFF);
    for (size_t b = 0; b < blocks; ++b) {
      const uint8_t* wb = w + b * kBytes;
      const uint8_t* ab = act + b * kQ8KBytes;
      const __m128i scale_bytes = q3k_scales(wb + 96);
      const __m512i scales = _mm512_and_si512(_mm512_cvtepi8_epi32(scale_bytes), low16);
      __m512i isum[T];
      #pragma GCC unroll 8
      for (size_t t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512();
      const __m512i hmask = broadcast_256(wb);
      #pragma GCC unroll 8
      for (int c = 0; c < 4; ++c) {
        // hmask bit 4h + k (k as in two_bit_chunk) to bit 2.
        const int bit = 4 * (c / 2) + 2 * (c & 1);
        const __m512i high = _mm512_rolv_epi32(hmask, halves_epi32((2 - bit) & 31, (1 - bit) & 31));
        const __m512i levels = _mm512_sub_epi8(
            _mm512_ternarylogic_epi32(_mm512_and_si512(two_bit_chunk(wb + 32, c), low2), high, bit2, 0xF8),
            _mm512_set1_epi8(4));
        const __m512i scale = _mm512_permutexvar_epi32(quads_epi32(4 * c), scales);
        const __m512i bias = signed_bias(levels);
        #pragma GCC unroll 8
        for (size_t t = 0; t < T; ++t) {
          isum[t] = dot_signed_scaled(isum[t], levels, bias, ab + t * act_stride + kQ8KQs + 64 * c, scale);
        }
      }
      const float d = load_f16(wb + 108);
      #pragma GCC unroll 8
      for (size_t t = 0; t < T; ++t) {
        const float da = load_f32(ab + t * act_stride);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_set1_ps(d * da), acc[t]);
      }
    }
    #pragma GCC unroll 8
    for (size_t t = 0; t < T; ++t) out[t * out_stride] = _mm512_reduce_add_ps(acc[t]);
  }
};

// ---------------------------------------------------------------------- Q2_K

// Block: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin.
struct Q2K {
  static constexpr size_t kTokens = 8;
  static constexpr size_t kBytes = 84;

  template <size_t T>
  static void run(const uint8_t* w, const uint8_t* act, size_t act_stride, size_t blocks, float* out,
                  size_t out_stride) {
    __m512 acc[T];
    #pragma GCC unroll 8
    for (size_t t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    const __m512i low2 = _mm512_set1_epi8(0x03);
    for (size_t b = 0; b < blocks; ++b) {
      const uint8_t* wb = w + b * kBytes;
      const uint8_t* ab = act + b * kQ8KBytes;
      const __m512i packed = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb)));
      const __m512i scales = _mm512_and_si512(packed, _mm512_set1_epi32(0x0F));
      const __m256i mins = _mm512_cvtepi32_epi16(_mm512_srli_epi32(packed, 4));
      __m512i isum[T];
      #pragma GCC unroll 8
      for (size_t t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512();
      #pragma GCC unroll 8
      for (int c = 0; c < 4; ++c) {
        const __m512i levels = _mm512_and_si512(two_bit_chunk(wb + 16, c), low2);
        const __m512i scale = _mm512_permutexvar_epi32(quads_epi32(4 * c), scales);
        #pragma GCC unroll 8
        for (size_t t = 0; t < T; ++t) {
          isum[t] = dot_scaled(isum[t], levels, ab + t * act_stride + kQ8KQs + 64 * c, scale);
        }
      }
      const float d = load_f16(wb + 80);
      const float dmin = load_f16(wb + 82);
      #pragma GCC unroll 8
      for (size_t t = 0; t < T; ++t) {
        const uint8_t* at = ab + t * act_stride;
        const float da = load_f32(at);
        const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at + kQ8KBsums));
        const __m256i min_sum = _mm256_madd_epi16(bsums, mins);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_set1_ps(d * da), acc[t]);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_zextsi256_si512(min_sum)), _mm512_set1_ps(-dmin * da),
                                 acc[t]);
      }
    }
    #pragma GCC unroll 8
    for (size_t t = 0; t < T; ++t) out[t * out_stride] = _mm512_reduce_add_ps(acc[t]);
  }
};

}  // namespace

void install_kquant_low_avx512(KernelSet& set) {
  set.dot_tile[type_slot(TensorType::Q2_K)] = kquant_tile<Q2K>;
  set.dot_tile[type_slot(TensorType::Q3_K)] = kquant_tile<Q3K>;
}

}  // namespace frugal
