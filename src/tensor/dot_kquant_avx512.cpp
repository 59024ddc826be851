// avx512 kernels for the kquant formats (see kernel_set.h for the rules).
//
// Q4_K, Q5_K, Q6_K weights against Q8_K activations (Q2_K/Q3_K live in
// dot_kquant_low_avx512.cpp, the Q8_K quantizer comes from the AVX2 level).
// A super-block is handled as four 64-element chunks, each one zmm of
// unsigned weight levels in the activations' element order, so activations
// are used straight from the Q8_K block:
//  - levels are unpacked with 256-bit broadcast loads (512-bit for Q6_K's
//    ql) and per-lane shifts / rotates (vpsrlvw / vprolvd) that bring each
//    half's bits into place, merged with vpternlogd;
//  - vpdpbusd(0, levels, activations) gives 16 int32 sums of 4 products,
//    each within int16 range; vpdpwssd with a vector holding the sub-block
//    scale in the low half of each dword applies the scale and accumulates:
//    two instructions per 64 multiply-adds (three for signed levels), exact
//    integers;
//  - Q6_K levels become signed (q - 32) and the activations unsigned
//    (a + 128) instead, see dot_signed_scaled; Q4_K/Q5_K mins use the Q8_K
//    bsums (dmin factor);
//  - per super-block the int32 sum is converted once and scaled by
//    d_w * d_a with FMA into one float accumulator per token.
// The tile works on 1 row x up to 8 tokens: the weight super-block is unpacked
// once and reused for every token of the group.
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

// a | (b & c)
FRUGAL_INLINE __m512i or_and(__m512i a, __m512i b, __m512i c) { return _mm512_ternarylogic_epi32(a, b, c, 0xF8); }

// ---------------------------------------------------------------- Q4_K / Q5_K

// Shared by Q4_K (kHigh = false) and Q5_K. Block: d, dmin, scales[12],
// [qh[32]], qs[128].
template <bool kHigh>
struct K4 {
  static constexpr size_t kTokens = 8;
  static constexpr size_t kBytes = kHigh ? 176 : 144;
  static constexpr size_t kQs = kHigh ? 48 : 16;

  template <size_t T>
  static void run(const uint8_t* w, const uint8_t* act, size_t act_stride, size_t blocks, float* out,
                  size_t out_stride) {
    __m512 acc[T];
    #pragma GCC unroll 8
    for (size_t t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    const __m512i nibble_shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    const __m512i bit4 = _mm512_set1_epi8(0x10);
    for (size_t b = 0; b < blocks; ++b) {
      const uint8_t* wb = w + b * kBytes;
      const uint8_t* ab = act + b * kQ8KBytes;
      const __m512i scales = _mm512_cvtepu8_epi32(q4k_scales_mins(wb + 4));  // 0-7 scales, 8-15 mins
      const __m256i mins = _mm512_extracti64x4_epi64(scales, 1);
      const __m256i mins_pairs = _mm256_or_si256(mins, _mm256_slli_epi32(mins, 16));
      __m512i high_bits = _mm512_setzero_si512();
      if constexpr (kHigh) high_bits = broadcast_256(wb + 16);
      __m512i isum[T];
      #pragma GCC unroll 8
      for (size_t t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512();
      #pragma GCC unroll 8
      for (int c = 0; c < 4; ++c) {
        __m512i levels = _mm512_and_si512(_mm512_srlv_epi16(broadcast_256(wb + kQs + 32 * c), nibble_shift), low4);
        if constexpr (kHigh) {
          // bit 2c of qh (first half) / 2c + 1 (second half) to bit 4.
          const __m512i rotate = halves_epi32((4 - 2 * c) & 31, (3 - 2 * c) & 31);
          levels = or_and(levels, _mm512_rolv_epi32(high_bits, rotate), bit4);
        }
        const __m512i scale = _mm512_permutexvar_epi32(halves_epi32(2 * c, 2 * c + 1), scales);
        #pragma GCC unroll 8
        for (size_t t = 0; t < T; ++t) {
          isum[t] = dot_scaled(isum[t], levels, ab + t * act_stride + kQ8KQs + 64 * c, scale);
        }
      }
      const float d = load_f16(wb);
      const float dmin = load_f16(wb + 2);
      #pragma GCC unroll 8
      for (size_t t = 0; t < T; ++t) {
        const uint8_t* at = ab + t * act_stride;
        const float da = load_f32(at);
        const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at + kQ8KBsums));
        const __m256i min_sum = _mm256_madd_epi16(bsums, mins_pairs);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_set1_ps(d * da), acc[t]);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_zextsi256_si512(min_sum)), _mm512_set1_ps(-dmin * da),
                                 acc[t]);
      }
    }
    #pragma GCC unroll 8
    for (size_t t = 0; t < T; ++t) out[t * out_stride] = _mm512_reduce_add_ps(acc[t]);
  }
};

// ---------------------------------------------------------------------- Q6_K

// Block: ql[128], qh[64], int8 scales[16], d.
struct Q6K {
  static constexpr size_t kTokens = 8;
  static constexpr size_t kBytes = 210;

  template <size_t T>
  static void run(const uint8_t* w, const uint8_t* act, size_t act_stride, size_t blocks, float* out,
                  size_t out_stride) {
    __m512 acc[T];
    #pragma GCC unroll 8
    for (size_t t = 0; t < T; ++t) acc[t] = _mm512_setzero_ps();
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    const __m512i bits45 = _mm512_set1_epi8(0x30);
    const __m512i low16 = _mm512_set1_epi32(0xFFFF);
    for (size_t b = 0; b < blocks; ++b) {
      const uint8_t* wb = w + b * kBytes;
      const uint8_t* ab = act + b * kQ8KBytes;
      const __m128i scale_bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wb + 192));
      // Signed scales in the low 16 bits of each dword, high bits clear.
      const __m512i scales = _mm512_and_si512(_mm512_cvtepi8_epi32(scale_bytes), low16);
      __m512i isum[T];
      #pragma GCC unroll 8
      for (size_t t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512();
      #pragma GCC unroll 8
      for (int c = 0; c < 4; ++c) {
        const int h = c / 2;
        const __m512i low = load_512(wb + 64 * h);
        const __m512i nibbles = (c & 1) ? _mm512_and_si512(_mm512_srli_epi16(low, 4), low4) : _mm512_and_si512(low, low4);
        // bits 2k, 2k+1 of qh to bits 4, 5: k = 2 (c & 1) in the first half,
        // k + 1 in the second.
        const __m512i rotate = (c & 1) ? halves_epi32(0, 30) : halves_epi32(4, 2);
        const __m512i high = _mm512_rolv_epi32(broadcast_256(wb + 128 + 32 * h), rotate);
        const __m512i levels = _mm512_sub_epi8(or_and(nibbles, high, bits45), _mm512_set1_epi8(32));
        const __m512i scale = _mm512_permutexvar_epi32(quads_epi32(4 * c), scales);
        const __m512i bias = signed_bias(levels);
        #pragma GCC unroll 8
        for (size_t t = 0; t < T; ++t) {
          isum[t] = dot_signed_scaled(isum[t], levels, bias, ab + t * act_stride + kQ8KQs + 64 * c, scale);
        }
      }
      const float d = load_f16(wb + 208);
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

}  // namespace

void install_kquant_avx512(KernelSet& set) {
  set.dot_tile[type_slot(TensorType::Q4_K)] = kquant_tile<K4<false>>;
  set.dot_tile[type_slot(TensorType::Q5_K)] = kquant_tile<K4<true>>;
  set.dot_tile[type_slot(TensorType::Q6_K)] = kquant_tile<Q6K>;
  install_kquant_low_avx512(set);
}

}  // namespace frugal
