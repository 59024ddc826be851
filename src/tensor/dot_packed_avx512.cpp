// The repacked-weight kernels (packed_kernels.h) on AVX-512 with VNNI: one
// zmm per 16 lanes, dpbusd for the byte products. See kernel_set.h for the
// rules of SIMD files.
// GCC 12's AVX-512 headers trip -Wuninitialized inside their own intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include "tensor/simd_avx512.h"
#include "tensor/packed_kernels.h"

namespace frugal {

namespace {

struct Avx512Target {
  using I = __m512i;
  using F = __m512;
  using Mask = __mmask16;
  // Tokens per legacy-format prefill tile: 12 independent dpbusd chains.
  // Qwen2.5-0.5B shape Q8_0 pp512: Intel Sapphire Rapids 381 -> 401 tok/s
  // (1 thread), 707 -> 735 (2); Zen 4 the same within noise.
  static constexpr size_t kMicroTokens = 6;
  static constexpr bool kUnsignedBytes = true;
  static FRUGAL_INLINE I load(const uint8_t* p) { return _mm512_loadu_si512(p); }
  static FRUGAL_INLINE I zero() { return _mm512_setzero_si512(); }
  static FRUGAL_INLINE I set1(int32_t x) { return _mm512_set1_epi32(x); }
  static FRUGAL_INLINE I and_(I a, I b) { return _mm512_and_si512(a, b); }
  static FRUGAL_INLINE I or_(I a, I b) { return _mm512_or_si512(a, b); }
  static FRUGAL_INLINE I xor_(I a, I b) { return _mm512_xor_si512(a, b); }
  static FRUGAL_INLINE I srli16(I a, unsigned n) { return _mm512_srli_epi16(a, n); }
  static FRUGAL_INLINE I slli16(I a, unsigned n) { return _mm512_slli_epi16(a, n); }
  static FRUGAL_INLINE I srli32(I a, unsigned n) { return _mm512_srli_epi32(a, n); }
  static FRUGAL_INLINE I slli32(I a, unsigned n) { return _mm512_slli_epi32(a, n); }
  // acc + the sums of 4 products of unsigned bytes u and signed bytes s.
  static FRUGAL_INLINE I dot4(I acc, I u, I s) { return _mm512_dpbusd_epi32(acc, u, s); }
  static FRUGAL_INLINE I dot4_signed(I acc, I a, I b) {  // unused: kUnsignedBytes
    return _mm512_dpbusd_epi32(acc, _mm512_abs_epi8(a), _mm512_mask_sub_epi8(b, _mm512_movepi8_mask(a), _mm512_setzero_si512(), b));
  }
  static FRUGAL_INLINE I add(I a, I b) { return _mm512_add_epi32(a, b); }
  static FRUGAL_INLINE I mullo(I a, I b) { return _mm512_mullo_epi32(a, b); }
  static FRUGAL_INLINE F to_float(I a) { return _mm512_cvtepi32_ps(a); }
  static FRUGAL_INLINE F zero_f() { return _mm512_setzero_ps(); }
  static FRUGAL_INLINE F set1_f(float x) { return _mm512_set1_ps(x); }
  static FRUGAL_INLINE F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static FRUGAL_INLINE F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static FRUGAL_INLINE F fnmadd(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
  static FRUGAL_INLINE F halves(const uint8_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static FRUGAL_INLINE I widen_u8(const uint8_t* p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static FRUGAL_INLINE I widen_i8(const uint8_t* p) {
    return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static FRUGAL_INLINE Mask mask(size_t valid) { return static_cast<Mask>((1u << valid) - 1); }
  static FRUGAL_INLINE F load_f(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static FRUGAL_INLINE void store_f(float* p, Mask m, F v) { _mm512_mask_storeu_ps(p, m, v); }
};

}  // namespace

void install_packed_avx512(KernelSet& set) { install_packed_kernels<Avx512Target>(set); }

}  // namespace frugal
