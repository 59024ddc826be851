// avx512 dot tiles for the plain formats F32, F16 and BF16 (see kernel_set.h
// for the rules): micro-tiles of 4 weight rows x 1, 2 or 4 tokens, 16
// elements per step (F16/BF16 widened to F32, products and sums in F32 by
// FMA), the last partial step by masked loads. Where the CPU has AVX512-BF16,
// BF16 uses dpbf16ps (32 elements per step) instead.
// GCC 12's AVX-512 headers trip -Wuninitialized inside their own intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "frugal/tensor_type.h"
#include "tensor/dot_legacy_simd.h"
#include "tensor/kernel_set.h"
#include "tensor/simd_avx512.h"

namespace frugal {

namespace {

struct PlainF32 {
  using V = __m512;
  static constexpr size_t kElementBytes = 4;
  static constexpr size_t kStep = 16;
  static FRUGAL_INLINE V load(const uint8_t* p) { return _mm512_loadu_ps(p); }
  static FRUGAL_INLINE V load_part(const uint8_t* p, size_t count) {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1), p);
  }
  static FRUGAL_INLINE __m512 madd(V w, V a, __m512 acc) { return _mm512_fmadd_ps(w, a, acc); }
};

struct PlainF16 {
  using V = __m512;
  static constexpr size_t kElementBytes = 2;
  static constexpr size_t kStep = 16;
  static FRUGAL_INLINE V load(const uint8_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static FRUGAL_INLINE V load_part(const uint8_t* p, size_t count) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(static_cast<__mmask16>((1u << count) - 1), p));
  }
  static FRUGAL_INLINE __m512 madd(V w, V a, __m512 acc) { return _mm512_fmadd_ps(w, a, acc); }
};

FRUGAL_INLINE __m512 bf16_to_f32(__m256i h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

struct PlainBF16 {
  using V = __m512;
  static constexpr size_t kElementBytes = 2;
  static constexpr size_t kStep = 16;
  static FRUGAL_INLINE V load(const uint8_t* p) {
    return bf16_to_f32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static FRUGAL_INLINE V load_part(const uint8_t* p, size_t count) {
    return bf16_to_f32(_mm256_maskz_loadu_epi16(static_cast<__mmask16>((1u << count) - 1), p));
  }
  static FRUGAL_INLINE __m512 madd(V w, V a, __m512 acc) { return _mm512_fmadd_ps(w, a, acc); }
};

// Only installed where the CPU has AVX512-BF16.
struct PlainBF16Dot {
  using V = __m512i;
  static constexpr size_t kElementBytes = 2;
  static constexpr size_t kStep = 32;
  static FRUGAL_INLINE V load(const uint8_t* p) { return _mm512_loadu_si512(p); }
  static FRUGAL_INLINE V load_part(const uint8_t* p, size_t count) {
    return _mm512_maskz_loadu_epi16(static_cast<__mmask32>((uint64_t{1} << count) - 1), p);
  }
  static FRUGAL_INLINE __m512 madd(V w, V a, __m512 acc) {
    return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(w), reinterpret_cast<__m512bh>(a));
  }
};

template <class P, int R, int T, bool Part>
FRUGAL_INLINE void plain_step(const uint8_t* const* wrow, const uint8_t* const* arow, size_t offset, size_t count,
                              __m512 (&acc)[R][T]) {
  typename P::V w[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) w[r] = Part ? P::load_part(wrow[r] + offset, count) : P::load(wrow[r] + offset);
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
    const typename P::V a = Part ? P::load_part(arow[t] + offset, count) : P::load(arow[t] + offset);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r][t] = P::madd(w[r], a, acc[r][t]);
  }
}

template <class P, int R, int T>
void plain_micro(const uint8_t* weights, size_t weight_stride, const uint8_t* activations, size_t activation_stride,
                 size_t n, size_t rows, size_t tokens, float* out, size_t out_stride) {
  const uint8_t* wrow[R];
  const uint8_t* arow[T];
  for (int r = 0; r < R; ++r) wrow[r] = weights + (static_cast<size_t>(r) < rows ? r : rows - 1) * weight_stride;
  for (int t = 0; t < T; ++t) {
    arow[t] = activations + (static_cast<size_t>(t) < tokens ? t : tokens - 1) * activation_stride;
  }
  __m512 acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  }
  size_t i = 0;
  if constexpr (T == 1) {
    // Decode streams the weights from memory: fetch the same place of rows
    // kDecodePrefetchBytes ahead, as the hardware prefetcher starts late on
    // short rows.
    const size_t group = R * weight_stride;
    const size_t ahead = (kDecodePrefetchBytes + group - 1) / group * group;
    for (; i + P::kStep <= n; i += P::kStep) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(wrow[r] + i * P::kElementBytes + ahead), _MM_HINT_T0);
      }
      plain_step<P, R, T, false>(wrow, arow, i * P::kElementBytes, 0, acc);
    }
  }
  for (; i + P::kStep <= n; i += P::kStep) plain_step<P, R, T, false>(wrow, arow, i * P::kElementBytes, 0, acc);
  if (i < n) plain_step<P, R, T, true>(wrow, arow, i * P::kElementBytes, n - i, acc);
  for (size_t t = 0; t < tokens; ++t) {
    for (size_t r = 0; r < rows; ++r) out[t * out_stride + r] = _mm512_reduce_add_ps(acc[r][t]);
  }
}

constexpr size_t kTileRows = 4;
constexpr size_t kTileTokens = 4;

template <class P>
void dot_tile_plain(const uint8_t* weights, size_t weight_stride, const uint8_t* activations,
                    size_t activation_stride, size_t n, size_t rows, size_t tokens, float* out, size_t out_stride) {
  for (size_t r0 = 0; r0 < rows; r0 += kTileRows) {
    const size_t row_count = rows - r0 < kTileRows ? rows - r0 : kTileRows;
    const uint8_t* w = weights + r0 * weight_stride;
    for (size_t t0 = 0; t0 < tokens; t0 += kTileTokens) {
      const size_t token_count = tokens - t0 < kTileTokens ? tokens - t0 : kTileTokens;
      const uint8_t* a = activations + t0 * activation_stride;
      float* o = out + t0 * out_stride + r0;
      if (token_count == 1) {
        plain_micro<P, 4, 1>(w, weight_stride, a, activation_stride, n, row_count, 1, o, out_stride);
      } else if (token_count == 2) {
        plain_micro<P, 4, 2>(w, weight_stride, a, activation_stride, n, row_count, 2, o, out_stride);
      } else {
        plain_micro<P, 4, 4>(w, weight_stride, a, activation_stride, n, row_count, token_count, o, out_stride);
      }
    }
  }
}

}  // namespace

void install_plain_avx512(KernelSet& set) {
  set.dot_tile[type_slot(TensorType::F32)] = dot_tile_plain<PlainF32>;
  set.dot_tile[type_slot(TensorType::F16)] = dot_tile_plain<PlainF16>;
  __builtin_cpu_init();
  set.dot_tile[type_slot(TensorType::BF16)] =
      __builtin_cpu_supports("avx512bf16") ? dot_tile_plain<PlainBF16Dot> : dot_tile_plain<PlainBF16>;
}

}  // namespace frugal
