// avx512 kernels for repacked K formats (Q4_Kx16, Q6_Kx16 in
// packed_weights.h; see kernel_set.h for the rules of SIMD files) against
// Q8_K activations.
//
// As for the legacy formats (dot_packed_avx512.cpp), lane r of every vector
// belongs to row r of a 16-row group and a dpbusd against 4 broadcast
// activation quants adds 4 products for all 16 rows. A sub-block's integer
// sum is multiplied by the 16 rows' scales (one byte per lane, widened) and
// added up in int32 over the super-block, exactly as the stored kernels do
// per row; then one FMA per super-block by d_w * d_a. Q4_K subtracts
// dmin * sum(min * activation sub-block sums), the sums from the Q8_K
// block's bsums; Q6_K's offset of 32 seeds each 16-element sum with
// -32 * bsum. A token's result does not depend on the tokens beside it.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tensor/kernel_set.h"
#include "tensor/packed_weights.h"
#include "tensor/simd_avx512.h"

namespace frugal {

namespace {

// Q8_K: float d, 256 int8 quants, 16 int16 sums of 16 quants.
constexpr size_t kActivationBytes = 292;
constexpr size_t kQuants = 4;
constexpr size_t kSums = 260;
constexpr size_t kMicroTokens = 4;
constexpr size_t kChunkTokens = 64;
constexpr size_t kPrefillBlocks = 4;  // super-blocks per chunk in prefill (a group's ~10-13 KB)
constexpr size_t kPackedPrefetchBytes = 65536;  // as for the legacy formats

struct Q4K {
  static constexpr size_t kBytes = 2368;
};
struct Q6K {
  static constexpr size_t kBytes = 3360;
};

FRUGAL_INLINE __m512i broadcast_quants(const uint8_t* p) {
  int32_t q;
  std::memcpy(&q, p, 4);
  return _mm512_set1_epi32(q);
}

FRUGAL_INLINE int32_t sum_at(const uint8_t* a, size_t i) {
  int16_t s;
  std::memcpy(&s, a + kSums + 2 * i, 2);
  return s;
}

FRUGAL_INLINE float d_of(const uint8_t* a) {
  float d;
  std::memcpy(&d, a, 4);
  return d;
}

FRUGAL_INLINE __m512i bytes_u8(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
FRUGAL_INLINE __m512i bytes_i8(const uint8_t* p) {
  return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
FRUGAL_INLINE __m512 halves(const uint8_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

template <int T, bool Decode>
void micro_q4_k(const uint8_t* w, const uint8_t* const* a_first, size_t count, bool accumulate, float* out,
                size_t out_stride, __mmask16 row_mask) {
  __m512 acc[T];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    acc[t] = accumulate ? _mm512_maskz_loadu_ps(row_mask, out + t * out_stride) : _mm512_setzero_ps();
  }
  const __m512i low_nibbles = _mm512_set1_epi8(0x0F);
  for (size_t k = 0; k < count; ++k) {
    const uint8_t* b = w + k * Q4K::kBytes;
    const uint8_t* a[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) a[t] = a_first[t] + k * kActivationBytes;
    if constexpr (Decode) {
      for (size_t line = 0; line < Q4K::kBytes; line += 512) {
        _mm_prefetch(reinterpret_cast<const char*>(b + kPackedPrefetchBytes + line), _MM_HINT_T0);
      }
    }
    __m512i total[T], mins[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) total[t] = mins[t] = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (size_t c = 0; c < 4; ++c) {
      __m512i lo_sum[T], hi_sum[T];
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) lo_sum[t] = hi_sum[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (size_t i = 0; i < 8; ++i) {
        const __m512i v = _mm512_loadu_si512(b + 64 * (8 * c + i));
        const __m512i lo = _mm512_and_si512(v, low_nibbles);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low_nibbles);
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t) {
          const uint8_t* q = a[t] + kQuants + 64 * c + 4 * i;
          lo_sum[t] = _mm512_dpbusd_epi32(lo_sum[t], lo, broadcast_quants(q));
          hi_sum[t] = _mm512_dpbusd_epi32(hi_sum[t], hi, broadcast_quants(q + 32));
        }
      }
      const __m512i scale_lo = bytes_u8(b + 2048 + 16 * (2 * c)), scale_hi = bytes_u8(b + 2048 + 16 * (2 * c + 1));
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        total[t] = _mm512_add_epi32(total[t], _mm512_add_epi32(_mm512_mullo_epi32(lo_sum[t], scale_lo),
                                                               _mm512_mullo_epi32(hi_sum[t], scale_hi)));
      }
    }
#pragma GCC unroll 8
    for (size_t s = 0; s < 8; ++s) {
      const __m512i m = bytes_u8(b + 2176 + 16 * s);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        const int32_t sub_sum = sum_at(a[t], 2 * s) + sum_at(a[t], 2 * s + 1);
        mins[t] = _mm512_add_epi32(mins[t], _mm512_mullo_epi32(m, _mm512_set1_epi32(sub_sum)));
      }
    }
    const __m512 d = halves(b + 2304), dmin = halves(b + 2336);
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const __m512 da = _mm512_set1_ps(d_of(a[t]));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total[t]), _mm512_mul_ps(d, da), acc[t]);
      acc[t] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mins[t]), _mm512_mul_ps(dmin, da), acc[t]);
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(out + t * out_stride, row_mask, acc[t]);
}

template <int T, bool Decode>
void micro_q6_k(const uint8_t* w, const uint8_t* const* a_first, size_t count, bool accumulate, float* out,
                size_t out_stride, __mmask16 row_mask) {
  __m512 acc[T];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    acc[t] = accumulate ? _mm512_maskz_loadu_ps(row_mask, out + t * out_stride) : _mm512_setzero_ps();
  }
  const __m512i low_nibbles = _mm512_set1_epi8(0x0F), two_bits = _mm512_set1_epi8(0x30);
  for (size_t k = 0; k < count; ++k) {
    const uint8_t* b = w + k * Q6K::kBytes;
    const uint8_t* a[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) a[t] = a_first[t] + k * kActivationBytes;
    if constexpr (Decode) {
      for (size_t line = 0; line < Q6K::kBytes; line += 512) {
        _mm_prefetch(reinterpret_cast<const char*>(b + kPackedPrefetchBytes + line), _MM_HINT_T0);
      }
    }
    __m512i total[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) total[t] = _mm512_setzero_si512();
    // Per half of the super-block (h) and of its 32-element rows (half):
    // each ql / qh vector is loaded once and gives the quants of four
    // 16-element sub-blocks (kk = 0..3).
#pragma GCC unroll 2
    for (size_t h = 0; h < 2; ++h) {
#pragma GCC unroll 2
      for (size_t half = 0; half < 2; ++half) {
        __m512i sum[4][T];
#pragma GCC unroll 4
        for (size_t kk = 0; kk < 4; ++kk) {
#pragma GCC unroll 4
          for (int t = 0; t < T; ++t) sum[kk][t] = _mm512_set1_epi32(-32 * sum_at(a[t], 8 * h + 2 * kk + half));
        }
#pragma GCC unroll 4
        for (size_t i = 4 * half; i < 4 * half + 4; ++i) {
          const uint8_t* step = b + 192 * (8 * h + i);
          const __m512i ql_a = _mm512_loadu_si512(step);
          const __m512i ql_b = _mm512_loadu_si512(step + 64);
          const __m512i qh = _mm512_loadu_si512(step + 128);
          // Low 4 bits from ql (kk 0, 1: low nibbles of a, b; kk 2, 3: high
          // nibbles), bits 2kk..2kk+1 of qh moved to bits 4..5.
          const __m512i q[4] = {
              _mm512_or_si512(_mm512_and_si512(ql_a, low_nibbles), _mm512_and_si512(_mm512_slli_epi16(qh, 4), two_bits)),
              _mm512_or_si512(_mm512_and_si512(ql_b, low_nibbles), _mm512_and_si512(_mm512_slli_epi16(qh, 2), two_bits)),
              _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql_a, 4), low_nibbles), _mm512_and_si512(qh, two_bits)),
              _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql_b, 4), low_nibbles),
                              _mm512_and_si512(_mm512_srli_epi16(qh, 2), two_bits))};
#pragma GCC unroll 4
          for (size_t kk = 0; kk < 4; ++kk) {
#pragma GCC unroll 4
            for (int t = 0; t < T; ++t) {
              sum[kk][t] = _mm512_dpbusd_epi32(sum[kk][t], q[kk],
                                               broadcast_quants(a[t] + kQuants + 128 * h + 32 * kk + 4 * i));
            }
          }
        }
#pragma GCC unroll 4
        for (size_t kk = 0; kk < 4; ++kk) {
          const __m512i scale = bytes_i8(b + 3072 + 16 * (8 * h + 2 * kk + half));
#pragma GCC unroll 4
          for (int t = 0; t < T; ++t) total[t] = _mm512_add_epi32(total[t], _mm512_mullo_epi32(sum[kk][t], scale));
        }
      }
    }
    const __m512 d = halves(b + 3328);
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total[t]), _mm512_mul_ps(d, _mm512_set1_ps(d_of(a[t]))), acc[t]);
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(out + t * out_stride, row_mask, acc[t]);
}

template <class L, int T, bool Decode>
FRUGAL_INLINE void micro(const uint8_t* w, const uint8_t* const* a, size_t count, bool accumulate, float* out,
                         size_t out_stride, __mmask16 row_mask) {
  if constexpr (L::kBytes == Q4K::kBytes) {
    micro_q4_k<T, Decode>(w, a, count, accumulate, out, out_stride, row_mask);
  } else {
    micro_q6_k<T, Decode>(w, a, count, accumulate, out, out_stride, row_mask);
  }
}

template <class L>
void dot_packed_k(const uint8_t* groups, size_t group_bytes, const uint8_t* activations, size_t activation_stride,
                  size_t n, size_t rows, size_t tokens, float* out, size_t out_stride) {
  const size_t blocks = n / 256, group_count = (rows + 15) / 16;
  for (size_t t0 = 0; t0 < tokens; t0 += kChunkTokens) {
    const size_t token_count = tokens - t0 < kChunkTokens ? tokens - t0 : kChunkTokens;
    // Decode: one forward stream per group; prefill: chunks of super-blocks
    // that stay in L1/L2 while the tokens pass over them.
    const size_t chunk = token_count == 1 ? blocks : kPrefillBlocks;
    for (size_t k0 = 0; k0 < blocks; k0 += chunk) {
      const size_t count = blocks - k0 < chunk ? blocks - k0 : chunk;
      const uint8_t* a0 = activations + t0 * activation_stride + k0 * kActivationBytes;
      for (size_t g = 0; g < group_count; ++g) {
        const uint8_t* w = groups + g * group_bytes + k0 * L::kBytes;
        const size_t first = 16 * g, valid = rows - first < 16 ? rows - first : 16;
        const __mmask16 row_mask = static_cast<__mmask16>((1u << valid) - 1);
        float* o = out + t0 * out_stride + first;
        for (size_t t = 0; t < token_count; t += kMicroTokens) {
          const size_t tc = token_count - t < kMicroTokens ? token_count - t : kMicroTokens;
          const uint8_t* a[kMicroTokens];
          for (size_t i = 0; i < tc; ++i) a[i] = a0 + (t + i) * activation_stride;
          float* ot = o + t * out_stride;
          switch (tc) {
            case 1:
              if (token_count == 1) {
                micro<L, 1, true>(w, a, count, k0 > 0, ot, out_stride, row_mask);
              } else {
                micro<L, 1, false>(w, a, count, k0 > 0, ot, out_stride, row_mask);
              }
              break;
            case 2: micro<L, 2, false>(w, a, count, k0 > 0, ot, out_stride, row_mask); break;
            case 3: micro<L, 3, false>(w, a, count, k0 > 0, ot, out_stride, row_mask); break;
            default: micro<L, 4, false>(w, a, count, k0 > 0, ot, out_stride, row_mask); break;
          }
        }
      }
    }
  }
}

}  // namespace

void install_packed_k_avx512(KernelSet& set) {
  set.dot_packed[static_cast<size_t>(PackedLayout::Q4_Kx16)] = dot_packed_k<Q4K>;
  set.dot_packed[static_cast<size_t>(PackedLayout::Q6_Kx16)] = dot_packed_k<Q6K>;
}

}  // namespace frugal
