// The repacked-weight kernels (packed_kernels.h) on AVX2: two ymm per 16
// lanes (rows 0-7, 8-15), maddubs + madd for the byte products. See
// kernel_set.h for the rules of SIMD files.
#include <immintrin.h>

#include "tensor/simd_avx2.h"
#include "tensor/packed_kernels.h"

namespace frugal {

namespace {

struct Avx2Target {
  struct I {
    __m256i lo, hi;
  };
  struct F {
    __m256 lo, hi;
  };
  using Mask = size_t;  // valid lanes, from the first
  static constexpr size_t kMicroTokens = 4;  // tokens per legacy-format prefill tile
  static constexpr bool kUnsignedBytes = false;
  static FRUGAL_INLINE I load(const uint8_t* p) {
    return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32))};
  }
  static FRUGAL_INLINE I zero() { return {_mm256_setzero_si256(), _mm256_setzero_si256()}; }
  static FRUGAL_INLINE I set1(int32_t x) { return {_mm256_set1_epi32(x), _mm256_set1_epi32(x)}; }
  static FRUGAL_INLINE I and_(I a, I b) { return {_mm256_and_si256(a.lo, b.lo), _mm256_and_si256(a.hi, b.hi)}; }
  static FRUGAL_INLINE I or_(I a, I b) { return {_mm256_or_si256(a.lo, b.lo), _mm256_or_si256(a.hi, b.hi)}; }
  static FRUGAL_INLINE I xor_(I a, I b) { return {_mm256_xor_si256(a.lo, b.lo), _mm256_xor_si256(a.hi, b.hi)}; }
  static FRUGAL_INLINE I srli16(I a, unsigned n) {
    return {_mm256_srli_epi16(a.lo, static_cast<int>(n)), _mm256_srli_epi16(a.hi, static_cast<int>(n))};
  }
  static FRUGAL_INLINE I slli16(I a, unsigned n) {
    return {_mm256_slli_epi16(a.lo, static_cast<int>(n)), _mm256_slli_epi16(a.hi, static_cast<int>(n))};
  }
  static FRUGAL_INLINE I srli32(I a, unsigned n) {
    return {_mm256_srli_epi32(a.lo, static_cast<int>(n)), _mm256_srli_epi32(a.hi, static_cast<int>(n))};
  }
  static FRUGAL_INLINE I slli32(I a, unsigned n) {
    return {_mm256_slli_epi32(a.lo, static_cast<int>(n)), _mm256_slli_epi32(a.hi, static_cast<int>(n))};
  }
  // acc + sums of 4 products u * s: maddubs pairs them into int16 (exact
  // while u < 128: 2 * 127 * 128 < 2^15), madd adds the pairs into int32.
  static FRUGAL_INLINE __m256i dot4_half(__m256i acc, __m256i u, __m256i s) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
  }
  static FRUGAL_INLINE I dot4(I acc, I u, I s) { return {dot4_half(acc.lo, u.lo, s.lo), dot4_half(acc.hi, u.hi, s.hi)}; }
  // Signed a * signed b by the sign trick: |a| * (b with a's sign).
  static FRUGAL_INLINE I dot4_signed(I acc, I a, I b) {
    return {dot4_half(acc.lo, _mm256_sign_epi8(a.lo, a.lo), _mm256_sign_epi8(b.lo, a.lo)),
            dot4_half(acc.hi, _mm256_sign_epi8(a.hi, a.hi), _mm256_sign_epi8(b.hi, a.hi))};
  }
  static FRUGAL_INLINE I add(I a, I b) { return {_mm256_add_epi32(a.lo, b.lo), _mm256_add_epi32(a.hi, b.hi)}; }
  static FRUGAL_INLINE I mullo(I a, I b) { return {_mm256_mullo_epi32(a.lo, b.lo), _mm256_mullo_epi32(a.hi, b.hi)}; }
  static FRUGAL_INLINE F to_float(I a) { return {_mm256_cvtepi32_ps(a.lo), _mm256_cvtepi32_ps(a.hi)}; }
  static FRUGAL_INLINE F zero_f() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  static FRUGAL_INLINE F set1_f(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
  static FRUGAL_INLINE F mul(F a, F b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
  static FRUGAL_INLINE F fmadd(F a, F b, F c) {
    return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
  }
  static FRUGAL_INLINE F fnmadd(F a, F b, F c) {
    return {_mm256_fnmadd_ps(a.lo, b.lo, c.lo), _mm256_fnmadd_ps(a.hi, b.hi, c.hi)};
  }
  static FRUGAL_INLINE F halves(const uint8_t* p) {
    return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16)))};
  }
  static FRUGAL_INLINE I widen_u8(const uint8_t* p) {
    return {_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))),
            _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8)))};
  }
  static FRUGAL_INLINE I widen_i8(const uint8_t* p) {
    return {_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))),
            _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 8)))};
  }
  static FRUGAL_INLINE Mask mask(size_t valid) { return valid; }
  // Lanes below `valid` of each half, as maskload/maskstore masks.
  static FRUGAL_INLINE __m256i lanes_below(size_t valid) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(valid)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static FRUGAL_INLINE F load_f(const float* p, Mask valid) {
    if (valid == 16) return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)};
    const size_t hi = valid > 8 ? valid - 8 : 0;
    return {_mm256_maskload_ps(p, lanes_below(valid)), _mm256_maskload_ps(p + 8, lanes_below(hi))};
  }
  static FRUGAL_INLINE void store_f(float* p, Mask valid, F v) {
    if (valid == 16) {
      _mm256_storeu_ps(p, v.lo);
      _mm256_storeu_ps(p + 8, v.hi);
      return;
    }
    const size_t hi = valid > 8 ? valid - 8 : 0;
    _mm256_maskstore_ps(p, lanes_below(valid), v.lo);
    _mm256_maskstore_ps(p + 8, lanes_below(hi), v.hi);
  }
};

}  // namespace

void install_packed_avx2(KernelSet& set) { install_packed_kernels<Avx2Target>(set); }

}  // namespace frugal
