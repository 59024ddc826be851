// avx2 kernels for the kquant formats (see kernel_set.h for the rules).
//
// Q4_K, Q5_K, Q6_K weights against Q8_K activations (Q2_K/Q3_K live in
// dot_kquant_low_avx2.cpp), and the Q8_K activation quantizer.
// A super-block is handled as eight 32-element chunks, each one ymm of
// unsigned weight levels in the activations' element order:
//  - maddubs(levels, activations) gives int16 pair sums without saturation
//    (levels <= 63, |activations| <= 128), madd with the sub-block scales
//    (int16, picked with a byte shuffle) gives exact int32 sums, as ggml;
//  - Q6_K levels are signed (q - 32): maddubs takes their magnitudes and the
//    activations with their signs (dot_signed_scaled); Q4_K/Q5_K mins are
//    sum(min * bsum) from the Q8_K bsums, scaled by dmin * d_a;
//  - per super-block the int32 sum is converted once and scaled by
//    d_w * d_a with FMA into one float accumulator per token.
// The tile works on 1 row x up to 4 tokens: the weight super-block is unpacked
// once and reused for every token of the group.
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

// ---------------------------------------------------------------- Q4_K / Q5_K

// Shared by Q4_K (kHigh = false) and Q5_K. Block: d, dmin, scales[12],
// [qh[32]], qs[128].
template <bool kHigh>
struct K4 {
  static constexpr size_t kTokens = 4;
  static constexpr size_t kBytes = kHigh ? 176 : 144;
  static constexpr size_t kQs = kHigh ? 48 : 16;

  template <size_t T>
  static void run(const uint8_t* w, const uint8_t* act, size_t act_stride, size_t blocks, float* out,
                  size_t out_stride) {
    __m256 acc[T];
    #pragma GCC unroll 8
    for (size_t t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    for (size_t b = 0; b < blocks; ++b) {
      const uint8_t* wb = w + b * kBytes;
      const uint8_t* ab = act + b * kQ8KBytes;
      const __m128i packed = q4k_scales_mins(wb + 4);
      const __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(packed));  // words 0-7 per lane
      const __m256i mins = _mm256_cvtepu8_epi32(_mm_unpackhi_epi64(packed, packed));
      const __m256i mins_pairs = _mm256_or_si256(mins, _mm256_slli_epi32(mins, 16));
      __m256i high_bits = _mm256_setzero_si256();
      if constexpr (kHigh) high_bits = load_256(wb + 16);
      __m256i isum[T];
      #pragma GCC unroll 8
      for (size_t t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
      #pragma GCC unroll 8
      for (int c = 0; c < 4; ++c) {
        const __m256i q = load_256(wb + kQs + 32 * c);
        __m256i lo = _mm256_and_si256(q, low4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
        if constexpr (kHigh) {
          lo = _mm256_or_si256(lo, _mm256_and_si256(move_bits(high_bits, 2 * c, 4), bit4));
          hi = _mm256_or_si256(hi, _mm256_and_si256(move_bits(high_bits, 2 * c + 1, 4), bit4));
        }
        const __m256i scale_lo = _mm256_shuffle_epi8(scales, word_mask(2 * c));
        const __m256i scale_hi = _mm256_shuffle_epi8(scales, word_mask(2 * c + 1));
        #pragma GCC unroll 8
        for (size_t t = 0; t < T; ++t) {
          const uint8_t* a = ab + t * act_stride + kQ8KQs + 64 * c;
          isum[t] = dot_scaled(dot_scaled(isum[t], lo, a, scale_lo), hi, a + 32, scale_hi);
        }
      }
      const float d = load_f16(wb);
      const float dmin = load_f16(wb + 2);
      #pragma GCC unroll 8
      for (size_t t = 0; t < T; ++t) {
        const uint8_t* at = ab + t * act_stride;
        const float da = load_f32(at);
        const __m256i min_sum = _mm256_madd_epi16(load_256(at + kQ8KBsums), mins_pairs);
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d * da), acc[t]);
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(min_sum), _mm256_set1_ps(-dmin * da), acc[t]);
      }
    }
    #pragma GCC unroll 8
    for (size_t t = 0; t < T; ++t) out[t * out_stride] = horizontal_sum(acc[t]);
  }
};

// ---------------------------------------------------------------------- Q6_K

// Block: ql[128], qh[64], int8 scales[16], d.
struct Q6K {
  static constexpr size_t kTokens = 4;
  static constexpr size_t kBytes = 210;

  template <size_t T>
  static void run(const uint8_t* w, const uint8_t* act, size_t act_stride, size_t blocks, float* out,
                  size_t out_stride) {
    __m256 acc[T];
    #pragma GCC unroll 8
    for (size_t t = 0; t < T; ++t) acc[t] = _mm256_setzero_ps();
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i bits45 = _mm256_set1_epi8(0x30);
    for (size_t b = 0; b < blocks; ++b) {
      const uint8_t* wb = w + b * kBytes;
      const uint8_t* ab = act + b * kQ8KBytes;
      const __m256i scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb + 192)));
      const __m256i scales_first = _mm256_permute2x128_si256(scales, scales, 0x00);  // sub-blocks 0-7 twice
      const __m256i scales_second = _mm256_permute2x128_si256(scales, scales, 0x11);  // 8-15 twice
      __m256i isum[T];
      #pragma GCC unroll 8
      for (size_t t = 0; t < T; ++t) isum[t] = _mm256_setzero_si256();
      #pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {  // elements 32i..32i+31 = 128h + 32k + l
        const int h = i / 4;
        const int k = i % 4;
        const __m256i low = load_256(wb + 64 * h + 32 * (k & 1));
        const __m256i nibbles = k < 2 ? _mm256_and_si256(low, low4) : _mm256_and_si256(_mm256_srli_epi16(low, 4), low4);
        const __m256i high = _mm256_and_si256(move_bits(load_256(wb + 128 + 32 * h), 2 * k, 4), bits45);
        const __m256i levels = _mm256_sub_epi8(_mm256_or_si256(nibbles, high), _mm256_set1_epi8(32));
        const __m256i magnitudes = _mm256_abs_epi8(levels);
        const __m256i scale = _mm256_shuffle_epi8(h == 0 ? scales_first : scales_second, word_pair_mask(2 * k));
        #pragma GCC unroll 8
        for (size_t t = 0; t < T; ++t) {
          isum[t] = dot_signed_scaled(isum[t], levels, magnitudes, ab + t * act_stride + kQ8KQs + 32 * i, scale);
        }
      }
      const float d = load_f16(wb + 208);
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

// ---------------------------------------------------------------------- Q8_K

// Bit-identical to detail::quantize_q8_k: the first value of largest
// magnitude sets iscale = -127 / max; levels are min(127, nearest_int(iscale
// * x)) with ggml's 1.5 * 2^23 rounding done in the same float steps (the
// product is kept from fusing into an FMA), truncated to int8 as the scalar
// cast does; NaNs are skipped by the max as by the scalar loop.
void quantize_q8_k_avx2(const float* x, void* out, size_t n) {
  uint8_t* dst = static_cast<uint8_t*>(out);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (size_t block = 0; block < n / kSuperBlock; ++block, x += kSuperBlock, dst += kQ8KBytes) {
    __m256 m[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (size_t j = 0; j < kSuperBlock; j += 32) {
      // max_ps(a, b) returns b when a is NaN.
      #pragma GCC unroll 8
      for (int k = 0; k < 4; ++k) m[k] = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j + 8 * k)), m[k]);
    }
    const __m256 m8 = _mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3]));
    const float amax = horizontal_max(m8);
    if (!(amax > 0.0f)) {
      std::memset(dst, 0, kQ8KBytes);
      continue;
    }
    size_t first = 0;
    const __m256 target = _mm256_set1_ps(amax);
    for (size_t j = 0; j < kSuperBlock; j += 8) {
      const int hits = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), target, _CMP_EQ_OQ));
      if (hits != 0) {
        first = j + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(hits)));
        break;
      }
    }
    const float iscale = -127.f / x[first];
    const __m256 scale = _mm256_set1_ps(iscale);
    const __m256 magic = _mm256_set1_ps(12582912.f);
    const __m256i mantissa = _mm256_set1_epi32(0x007fffff);
    const __m256i bias = _mm256_set1_epi32(0x00400000);
    const __m256i cap = _mm256_set1_epi32(127);
    const __m256i low_byte = _mm256_set1_epi32(0xFF);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
    int16_t bsums[16];
    for (size_t j = 0; j < kSuperBlock; j += 32) {
      __m256i q[4];
      #pragma GCC unroll 8
      for (int k = 0; k < 4; ++k) {
        __m256 v = _mm256_mul_ps(scale, _mm256_loadu_ps(x + j + 8 * k));
        __asm__("" : "+x"(v));  // no FMA contraction with the add below
        v = _mm256_add_ps(v, magic);
        const __m256i level = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(v), mantissa), bias);
        q[k] = _mm256_and_si256(_mm256_min_epi32(level, cap), low_byte);
      }
      __m256i bytes = _mm256_packus_epi16(_mm256_packus_epi32(q[0], q[1]), _mm256_packus_epi32(q[2], q[3]));
      bytes = _mm256_permutevar8x32_epi32(bytes, order);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + kQ8KQs + j), bytes);
      // Sums of the two 16-byte groups: sad of the bytes + 128, less 16 * 128.
      __m256i sums = _mm256_sad_epu8(_mm256_xor_si256(bytes, flip), _mm256_setzero_si256());
      sums = _mm256_add_epi64(sums, _mm256_shuffle_epi32(sums, _MM_SHUFFLE(1, 0, 3, 2)));
      bsums[j / 16] = static_cast<int16_t>(_mm256_extract_epi32(sums, 0) - 2048);
      bsums[j / 16 + 1] = static_cast<int16_t>(_mm256_extract_epi32(sums, 4) - 2048);
    }
    std::memcpy(dst + kQ8KBsums, bsums, sizeof(bsums));
    const float d = 1 / iscale;
    std::memcpy(dst, &d, sizeof(d));
  }
}

}  // namespace

void install_kquant_avx2(KernelSet& set) {
  set.dot_tile[type_slot(TensorType::Q4_K)] = kquant_tile<K4<false>>;
  set.dot_tile[type_slot(TensorType::Q5_K)] = kquant_tile<K4<true>>;
  set.dot_tile[type_slot(TensorType::Q6_K)] = kquant_tile<Q6K>;
  set.quantize_activation[type_slot(TensorType::Q8_K)] = quantize_q8_k_avx2;
  install_kquant_low_avx2(set);
}

}  // namespace frugal
