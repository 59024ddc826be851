// avx2 dot tiles for the plain formats F32, F16 and BF16 (see kernel_set.h
// for the rules): micro-tiles of 4 weight rows x 1 or 2 tokens, 8 elements
// per step (F16 by F16C, BF16 by shifting, products and sums in F32 by FMA);
// the last partial step goes through a zero-padded copy.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "frugal/tensor_type.h"
#include "tensor/dot_legacy_simd.h"
#include "tensor/kernel_set.h"
#include "tensor/simd_avx2.h"

namespace frugal {

namespace {

constexpr size_t kStep = 8;

struct PlainF32 {
  static constexpr size_t kElementBytes = 4;
  static FRUGAL_INLINE __m256 load(const uint8_t* p) { return _mm256_loadu_ps(reinterpret_cast<const float*>(p)); }
};

struct PlainF16 {
  static constexpr size_t kElementBytes = 2;
  static FRUGAL_INLINE __m256 load(const uint8_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
};

struct PlainBF16 {
  static constexpr size_t kElementBytes = 2;
  static FRUGAL_INLINE __m256 load(const uint8_t* p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
};

// The first `count` (< kStep) elements at p, zero-padded.
template <class P>
FRUGAL_INLINE __m256 load_part(const uint8_t* p, size_t count) {
  alignas(32) uint8_t buffer[kStep * 4] = {};
  std::memcpy(buffer, p, count * P::kElementBytes);
  return P::load(buffer);
}

template <class P, int R, int T, bool Part>
FRUGAL_INLINE void plain_step(const uint8_t* const* wrow, const uint8_t* const* arow, size_t offset, size_t count,
                              __m256 (&acc)[R][T]) {
  __m256 w[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) w[r] = Part ? load_part<P>(wrow[r] + offset, count) : P::load(wrow[r] + offset);
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
    const __m256 a = Part ? load_part<P>(arow[t] + offset, count) : P::load(arow[t] + offset);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(w[r], a, acc[r][t]);
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
  __m256 acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  size_t i = 0;
  if constexpr (T == 1) {
    // Decode streams the weights from memory: fetch the same place of rows
    // kDecodePrefetchBytes ahead, as the hardware prefetcher starts late on
    // short rows.
    const size_t group = R * weight_stride;
    const size_t ahead = (kDecodePrefetchBytes + group - 1) / group * group;
    for (; i + kStep <= n; i += kStep) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(wrow[r] + i * P::kElementBytes + ahead), _MM_HINT_T0);
      }
      plain_step<P, R, T, false>(wrow, arow, i * P::kElementBytes, 0, acc);
    }
  }
  for (; i + kStep <= n; i += kStep) plain_step<P, R, T, false>(wrow, arow, i * P::kElementBytes, 0, acc);
  if (i < n) plain_step<P, R, T, true>(wrow, arow, i * P::kElementBytes, n - i, acc);
  for (size_t t = 0; t < tokens; ++t) {
    for (size_t r = 0; r < rows; ++r) out[t * out_stride + r] = horizontal_sum(acc[r][t]);
  }
}

constexpr size_t kTileRows = 4;
constexpr size_t kTileTokens = 2;

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
      } else {
        plain_micro<P, 4, 2>(w, weight_stride, a, activation_stride, n, row_count, 2, o, out_stride);
      }
    }
  }
}

}  // namespace

void install_plain_avx2(KernelSet& set) {
  set.dot_tile[type_slot(TensorType::F32)] = dot_tile_plain<PlainF32>;
  set.dot_tile[type_slot(TensorType::F16)] = dot_tile_plain<PlainF16>;
  set.dot_tile[type_slot(TensorType::BF16)] = dot_tile_plain<PlainBF16>;
}

}  // namespace frugal
