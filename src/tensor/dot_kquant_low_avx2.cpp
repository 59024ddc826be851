// avx2 kernels for Q2_K and Q3_K weights against Q8_K activations (see
// kernel_set.h for the rules, dot_kquant_avx2.cpp for the scheme: 32-element
// chunks of unsigned levels, maddubs + madd with int16 sub-block scales,
// mins through the Q8_K bsums).
//  - Q3_K levels q = (low 2 bits | hmask bit << 2) - 4 are signed: ggml's
//    sign trick (dot_signed_scaled);
//  - Q2_K's mins are sum(min * bsum) with the dmin factor.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "frugal/tensor_type.h"
#include "tensor/dot_kquant_simd.h"
#include "tensor/kernel_set.h"
#include "tensor/simd_avx2.h"

namespace frugal {

namespace {

// Scale vector of chunk i (sub-blocks 2i, 2i + 1) from 16 int16 scales.
FRUGAL_INLINE __m256i chunk_scale(__m256i first_half_twice, __m256i second_half_twice, int i) {
  return _mm256_shuffle_epi8(i < 4 ? first_half_twice : second_half_twice, word_pair_mask(2 * (i % 4)));
}

// ---------------------------------------------------------------------- Q3_K

// Block: hmask[32], qs[64], scales[12], d.
struct Q3K {
  static constexpr size_t kTokens = 4;
  static constexpr size_t kBytes = 110;

  template <size_t T>
  static void run(const uint8_t* w, const uint8_t* act, size_t act_stride, size_t blocks, float* out,
                  size_t out_stride) {
    __m256 acc[T];
    #pragma GCC unroll 8
    for (size_t t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    const __m256i low2 = _mm256_set1_epi8(0x03);
    const __m256i bit2 = _mm256_set1_epi8(0x04);
    for (size_t b = 0; b < blocks; ++b) {
      const uint8_t* wb = w + b * kBytes;
      const uint8_t* ab = act + b * kQ8KBytes;
      const __m128i scale_bytes = q3k_scales(wb + 96);
      const __m256i scales = _mm256_cvtepi8_epi16(scale_bytes);
      const __m256i scales_first = _mm256_permute2x128_si256(scales, scales, 0x00);
      const __m256i scales_second = _mm256_permute2x128_si256(scales, scales, 0x11);
      __m256i isum[T];
      #pragma GCC unroll 8
      for (size_t t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
      const __m256i hmask = load_256(wb);
      #pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {  // elements 32i..32i+31 = 128h + 32k + l
        const int h = i / 4;
        const int k = i % 4;
        const __m256i low = _mm256_and_si256(move_bits(load_256(wb + 32 + 32 * h), 2 * k, 0), low2);
        const __m256i levels = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_and_si256(move_bits(hmask, i, 2), bit2)),
                                               _mm256_set1_epi8(4));
        const __m256i magnitudes = _mm256_abs_epi8(levels);
        const __m256i scale = chunk_scale(scales_first, scales_second, i);
        #pragma GCC unroll 8
        for (size_t t = 0; t < T; ++t) {
          isum[t] = dot_signed_scaled(isum[t], levels, magnitudes, ab + t * act_stride + kQ8KQs + 32 * i, scale);
        }
      }
      const float d = load_f16(wb + 108);
      #pragma GCC unroll 8
      for (size_t t = 0; t < T; ++t) {
        const float da = load_f32(ab + t * act_stride);
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * da), acc[t]);
      }
    }
    #pragma GCC unroll 8
    for (size_t t = 0; t < T; ++t) out[t * out_stride] = horizontal_sum(acc[t]);
  }
};

// ---------------------------------------------------------------------- Q2_K

// Block: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin.
struct Q2K {
  static constexpr size_t kTokens = 4;
  static constexpr size_t kBytes = 84;

  template <size_t T>
  static void run(const uint8_t* w, const uint8_t* act, size_t act_stride, size_t blocks, float* out,
                  size_t out_stride) {
    __m256 acc[T];
    #pragma GCC unroll 8
    for (size_t t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    const __m256i low2 = _mm256_set1_epi8(0x03);
    const __m256i low4 = _mm256_set1_epi16(0x0F);
    for (size_t b = 0; b < blocks; ++b) {
      const uint8_t* wb = w + b * kBytes;
      const uint8_t* ab = act + b * kQ8KBytes;
      const __m256i packed = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb)));
      const __m256i scales = _mm256_and_si256(packed, low4);
      const __m256i mins = _mm256_srli_epi16(packed, 4);
      const __m256i scales_first = _mm256_permute2x128_si256(scales, scales, 0x00);
      const __m256i scales_second = _mm256_permute2x128_si256(scales, scales, 0x11);
      __m256i isum[T];
      #pragma GCC unroll 8
      for (size_t t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
      #pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        const int h = i / 4;
        const int k = i % 4;
        const __m256i levels = _mm256_and_si256(move_bits(load_256(wb + 16 + 32 * h), 2 * k, 0), low2);
        const __m256i scale = chunk_scale(scales_first, scales_second, i);
        #pragma GCC unroll 8
        for (size_t t = 0; t < T; ++t) {
          isum[t] = dot_scaled(isum[t], levels, ab + t * act_stride + kQ8KQs + 32 * i, scale);
        }
      }
      const float d = load_f16(wb + 80);
      const float dmin = load_f16(wb + 82);
      #pragma GCC unroll 8
      for (size_t t = 0; t < T; ++t) {
        const uint8_t* at = ab + t * act_stride;
        const float da = load_f32(at);
        const __m256i min_sum = _mm256_madd_epi16(load_256(at + kQ8KBsums), mins);
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * da), acc[t]);
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(min_sum), _mm256_set1_ps(-dmin * da), acc[t]);
      }
    }
    #pragma GCC unroll 8
    for (size_t t = 0; t < T; ++t) out[t * out_stride] = horizontal_sum(acc[t]);
  }
};

}  // namespace

void install_kquant_low_avx2(KernelSet& set) {
  set.dot_tile[type_slot(TensorType::Q2_K)] = kquant_tile<Q2K>;
  set.dot_tile[type_slot(TensorType::Q3_K)] = kquant_tile<Q3K>;
}

}  // namespace frugal
