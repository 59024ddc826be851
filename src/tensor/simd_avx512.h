// Small helpers shared by the AVX-512 kernel files (*_avx512.cpp); includes
// simd_avx2.h for the helpers of both levels. Only files compiled with the
// AVX-512 flags of CMakeLists.txt (F/BW/VL/DQ/VNNI/BF16) may include it.
//
// Everything sits in an anonymous namespace: each including file gets its own
// copy, compiled with its own instruction set, and no inline function is
// shared between files (the rule of kernel_set.h).
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "tensor/simd_avx2.h"

namespace frugal {
namespace {

FRUGAL_INLINE __m512i load_512(const uint8_t* p) { return _mm512_loadu_si512(p); }

// ---------------------------- AVX-512 K-quant chunks (dot_kquant_*_avx512.cpp)

// Lanes 0-7 = a, lanes 8-15 = b.
FRUGAL_INLINE __m512i halves_epi32(int a, int b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(a)), _mm256_set1_epi32(b), 1);
}

// Lanes 4j..4j+3 = first + j: the dword index of each 16-element sub-block
// of chunk `first / 4`.
FRUGAL_INLINE __m512i quads_epi32(int first) {
  return _mm512_set_epi32(first + 3, first + 3, first + 3, first + 3, first + 2, first + 2, first + 2, first + 2,
                          first + 1, first + 1, first + 1, first + 1, first, first, first, first);
}

FRUGAL_INLINE __m512i broadcast_256(const uint8_t* p) {
  return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// acc += scale * dot(levels, activations) per dword: vpdpbusd(0, levels,
// activations) gives 16 int32 sums of 4 products, vpdpwssd applies the
// sub-block scale held in the low half of each dword (dot_kquant_avx512.cpp).
FRUGAL_INLINE __m512i dot_scaled(__m512i acc, __m512i levels, const uint8_t* activations, __m512i scale) {
  const __m512i sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), levels, load_512(activations));
  return _mm512_dpwssd_epi32(acc, sums, scale);
}

// Signed levels (Q6_K, Q3_K): the activations become unsigned a + 128 (xor
// 0x80) and vpdpbusd starts from -128 * sum(levels) per dword, so every dword
// holds the exact sum of its 4 products; subtracting the level offset through
// the bsums instead would leave dwords far larger than the result, and their
// float rounding would not be bounded by sum |w * a|.
FRUGAL_INLINE __m512i signed_bias(__m512i levels) {
  const __m512i sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(static_cast<char>(0x80)), levels);
  return _mm512_sub_epi32(_mm512_setzero_si512(), sums);
}

FRUGAL_INLINE __m512i dot_signed_scaled(__m512i acc, __m512i levels, __m512i bias, const uint8_t* activations,
                                        __m512i scale) {
  const __m512i shifted = _mm512_xor_si512(load_512(activations), _mm512_set1_epi8(static_cast<char>(0x80)));
  return _mm512_dpwssd_epi32(acc, _mm512_dpbusd_epi32(bias, shifted, levels), scale);
}

}  // namespace
}  // namespace frugal
