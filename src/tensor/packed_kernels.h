// The kernels of repacked weights (packed_weights.h), written once over a
// small SIMD target S and instantiated per instruction set
// (dot_packed_avx512.cpp, dot_packed_avx2.cpp), as gemma.cpp does with
// Highway's per-target compilation.
//
// Lane r of every weight vector belongs to row r of a 16-row group (S has
// 16 int32 or float lanes: one zmm, or two ymm), so a 4-byte dot product
// against 4 activation quants broadcast to all lanes adds that part of a
// block's dot product for 16 rows at once; the vectors of a block finish it
// in int32 (exact). One convert and one FMA by d_w (per lane) * d_a
// (broadcast) per block and token add it to float sums that are already the
// 16 outputs: no gathers, no permutes, no horizontal reductions. A token's
// result does not depend on which tokens it is multiplied with (same
// operations in the same order), so batched and one-by-one products agree
// bit for bit.
//
// Byte products: targets with unsigned x signed products that never
// saturate (AVX-512 VNNI's dpbusd, S::kUnsignedBytes) take Q8_0 as q + 128
// and seed each block's sum with -128 * sum(activation block); others
// (AVX2's maddubs saturates at 16 bits) multiply Q8_0 signed, by the sign
// trick. Nibble formats (q + 8, q + 16 with the offset in the seed; Q4_1 /
// Q5_1 add m_w * s_a per block) and the K formats' quants (at most 63) fit
// either way.
//
// Legacy formats: a micro-tile is 2 (or 1) groups x up to S::kMicroTokens
// tokens (AVX-512: 6, which keeps 12 dot-product chains in flight; AVX2: 4); the
// activations of a chunk of tokens and blocks are prepared once per call
// (seeds and float d, per quad of blocks); chunks after the first accumulate
// onto the outputs. Decode (1 token) takes all blocks in one chunk, one
// group at a time (a single forward stream, which the hardware prefetchers
// follow best: two interleaved groups decoded 1.4x slower on Zen 4), and
// prefetches ahead.
//
// K formats: a sub-block's integer sum is multiplied by the 16 rows' scales
// (one byte per lane, widened) and added up in int32 over the super-block,
// exactly as the stored kernels do per row; then one FMA per super-block by
// d_w * d_a. Q4_K subtracts dmin * sum(min * activation sub-block sums),
// the sums from the Q8_K block's bsums; Q6_K's offset of 32 seeds each
// 16-element sum with -32 * bsum.
//
// Only files compiled with at least -mavx2 -mfma -mf16c include this; it
// sits in an anonymous namespace, so each gets its own copy (kernel_set.h).
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tensor/kernel_set.h"
#include "tensor/packed_weights.h"

#ifndef FRUGAL_INLINE
#define FRUGAL_INLINE inline __attribute__((always_inline))
#endif

namespace frugal {
namespace {

// Decode prefetches this far ahead in the packed stream (laid out in the
// order a forward pass reads it, so it runs on into the next matrix).
// Zen 4, 1 and 2 threads: the same speed as none; kept for CPUs whose
// streamers stop at 4 KiB page ends.
constexpr size_t kPackedPrefetchBytes = 65536;

// ------------------------------------------------------------ legacy formats

constexpr size_t kChunkTokens = 64;
constexpr size_t kMicroTokens = 4;  // K formats' tiles (legacy formats: S::kMicroTokens)
constexpr size_t kScratchQuads = 512;  // prepared quads of blocks, all tokens of a chunk

// Per quad of activation blocks: 4 int32 seeds, then 4 float d. (One per
// including file and thread.)
struct alignas(64) PreparedActivations {
  int32_t quad[kScratchQuads][8];
};
thread_local PreparedActivations prepared;

// What a layout's kernel needs to know (packed_weights.h has the bytes).
// Activations are Q8_0 blocks (34 bytes, quants at 2), or Q8_1 (36 bytes:
// d, s, quants at 4) for the formats with a min.
template <size_t Vectors, int Offset, bool HighBits, bool Min>
struct Layout {
  static constexpr size_t kVectors = Vectors;
  static constexpr int kOffset = Offset;
  static constexpr bool kHighBits = HighBits;
  static constexpr bool kMin = Min;
  static constexpr size_t kActivationBytes = Min ? 36 : 34;
  static constexpr size_t kActivationQuants = Min ? 4 : 2;
  static constexpr size_t kScales = 64 * Vectors + (HighBits ? 64 : 0);  // the d, then the m
  static constexpr size_t kBytes = kScales + (Min ? 64 : 32);
};
using LayoutQ8_0 = Layout<8, 128, false, false>;
using LayoutQ4_0 = Layout<4, 8, false, false>;
using LayoutQ4_1 = Layout<4, 0, false, true>;
using LayoutQ5_0 = Layout<4, 16, true, false>;
using LayoutQ5_1 = Layout<4, 0, true, true>;

// Per block of one activation row, written as quads from `dst`: the seed
// -offset * sum of quants (formats with a min: the float s instead, as they
// need no seed), then the float d.
template <class S, class L>
void prepare_row(const uint8_t* a, size_t count, int32_t (*dst)[8]) {
  // Q8_0 on targets whose byte products are signed needs no seed.
  constexpr int kOffset = L::kVectors == 8 && !S::kUnsignedBytes ? 0 : L::kOffset;
  for (size_t k = 0; k < count; ++k) {
    const uint8_t* block = a + k * L::kActivationBytes;
    uint16_t d_bits;
    std::memcpy(&d_bits, block, 2);
    const float d = _cvtsh_ss(d_bits);
    std::memcpy(&dst[k / 4][4 + k % 4], &d, 4);
    if constexpr (L::kMin) {
      uint16_t s_bits;
      std::memcpy(&s_bits, block + 2, 2);
      const float s = _cvtsh_ss(s_bits);
      std::memcpy(&dst[k / 4][k % 4], &s, 4);
    } else {
      // sum(q) = sum(q ^ 0x80) - 128 * 32, the first by one SAD (AVX2).
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + L::kActivationQuants));
      const __m256i biased = _mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80)));
      const __m256i s = _mm256_sad_epu8(biased, _mm256_setzero_si256());
      const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      const int64_t total = _mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1);
      dst[k / 4][k % 4] = -kOffset * (static_cast<int32_t>(total) - 128 * 32);
    }
  }
}

// G groups x T tokens over blocks [0, count) of a chunk. w[g]: the group's
// first block of the chunk; a[t]: the token's first activation block;
// prep[t]: its prepared quads.
template <class S, class L, int G, int T, bool Decode>
void micro(const uint8_t* const* w, const uint8_t* const* a, const int32_t (*const* prep)[8], size_t count,
           bool accumulate, float* out, size_t out_stride, const typename S::Mask* row_mask) {
  constexpr size_t kBytes = L::kBytes;
  constexpr size_t kA = L::kActivationBytes, kQ = L::kActivationQuants;
  typename S::F acc[G][T];
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      acc[g][t] = accumulate ? S::load_f(out + t * out_stride + 16 * g, row_mask[g]) : S::zero_f();
    }
  }
  for (size_t k = 0; k < count; ++k) {
    if constexpr (Decode) {
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) {
        _mm_prefetch(reinterpret_cast<const char*>(w[g] + k * kBytes + kPackedPrefetchBytes), _MM_HINT_T0);
      }
    }
    typename S::I sum[G][T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const typename S::I seed = L::kMin ? S::zero() : S::set1(prep[t][k / 4][k % 4]);
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) sum[g][t] = seed;
    }
#pragma GCC unroll 8
    for (size_t j = 0; j < L::kVectors; ++j) {
      typename S::I v[G];
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) v[g] = S::load(w[g] + k * kBytes + 64 * j);
      if constexpr (L::kVectors == 8) {
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          int32_t q;
          std::memcpy(&q, a[t] + k * kA + kQ + 4 * j, 4);
          const typename S::I x = S::set1(q);
#pragma GCC unroll 8
          for (int g = 0; g < G; ++g) {
            if constexpr (S::kUnsignedBytes) {
              sum[g][t] = S::dot4(sum[g][t], v[g], x);  // q + 128, offset in the seed
            } else {
              sum[g][t] = S::dot4_signed(sum[g][t], S::xor_(v[g], S::set1(static_cast<int32_t>(0x80808080u))), x);
            }
          }
        }
      } else {
        const typename S::I low_nibbles = S::set1(0x0F0F0F0F);
        typename S::I lo[G], hi[G];
#pragma GCC unroll 8
        for (int g = 0; g < G; ++g) {
          lo[g] = S::and_(v[g], low_nibbles);
          hi[g] = S::and_(S::srli16(v[g], 4), low_nibbles);
          if constexpr (L::kHighBits) {
            // The fifth bits of these 8 elements, at bit 4 of their bytes.
            const typename S::I bits = S::load(w[g] + k * kBytes + 64 * L::kVectors);
            const typename S::I fifth = S::set1(0x10101010);
            lo[g] = S::or_(lo[g], S::and_(S::srli32(bits, static_cast<unsigned>(j)), fifth));
            hi[g] = S::or_(hi[g], S::and_(S::slli32(bits, static_cast<unsigned>(4 - j)), fifth));
          }
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          int32_t q_lo, q_hi;
          std::memcpy(&q_lo, a[t] + k * kA + kQ + 4 * j, 4);
          std::memcpy(&q_hi, a[t] + k * kA + kQ + 16 + 4 * j, 4);
          const typename S::I x_lo = S::set1(q_lo), x_hi = S::set1(q_hi);
#pragma GCC unroll 8
          for (int g = 0; g < G; ++g) {
            sum[g][t] = S::dot4(S::dot4(sum[g][t], lo[g], x_lo), hi[g], x_hi);
          }
        }
      }
    }
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      const typename S::F dw =
          S::halves(w[g] + k * kBytes + L::kScales);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        float da;
        std::memcpy(&da, &prep[t][k / 4][4 + k % 4], 4);
        acc[g][t] = S::fmadd(S::to_float(sum[g][t]), S::mul(dw, S::set1_f(da)), acc[g][t]);
      }
      if constexpr (L::kMin) {
        // + m_w * s_a, s_a = d_a * sum(q_a) as the Q8_1 block carries it.
        const typename S::F mw =
            S::halves(w[g] + k * kBytes + L::kScales + 32);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          float sa;
          std::memcpy(&sa, &prep[t][k / 4][k % 4], 4);
          acc[g][t] = S::fmadd(mw, S::set1_f(sa), acc[g][t]);
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) S::store_f(out + t * out_stride + 16 * g, row_mask[g], acc[g][t]);
  }
}

// Dispatches a micro-tile of `tokens` (1..S::kMicroTokens) tokens.
template <class S, class L, int G>
void micro_tokens(size_t tokens, const uint8_t* const* w, const uint8_t* const* a, const int32_t (*const* prep)[8],
                  size_t count, bool accumulate, float* out, size_t out_stride, const typename S::Mask* row_mask) {
  static_assert(S::kMicroTokens == 4 || S::kMicroTokens == 6, "tiles of 4 or 6 tokens are dispatched below");
  switch (tokens) {
    case 1: micro<S, L, G, 1, false>(w, a, prep, count, accumulate, out, out_stride, row_mask); break;
    case 2: micro<S, L, G, 2, false>(w, a, prep, count, accumulate, out, out_stride, row_mask); break;
    case 3: micro<S, L, G, 3, false>(w, a, prep, count, accumulate, out, out_stride, row_mask); break;
    case 4: micro<S, L, G, 4, false>(w, a, prep, count, accumulate, out, out_stride, row_mask); break;
    default:
      if constexpr (S::kMicroTokens >= 6) {
        if (tokens == 5) {
          micro<S, L, G, 5, false>(w, a, prep, count, accumulate, out, out_stride, row_mask);
        } else {
          micro<S, L, G, 6, false>(w, a, prep, count, accumulate, out, out_stride, row_mask);
        }
      }
      break;
  }
}

template <class S, class L>
void dot_packed(const uint8_t* groups, size_t group_bytes, const uint8_t* activations, size_t activation_stride,
                size_t n, size_t rows, size_t tokens, float* out, size_t out_stride) {
  constexpr size_t kBytes = L::kBytes;
  const size_t blocks = n / 32, group_count = (rows + 15) / 16;
  for (size_t t0 = 0; t0 < tokens; t0 += kChunkTokens) {
    const size_t token_count = tokens - t0 < kChunkTokens ? tokens - t0 : kChunkTokens;
    const size_t chunk = kScratchQuads / token_count * 4;  // blocks per chunk
    for (size_t k0 = 0; k0 < blocks; k0 += chunk) {
      const size_t count = blocks - k0 < chunk ? blocks - k0 : chunk;
      const size_t quads = (count + 3) / 4;
      const uint8_t* a0 = activations + t0 * activation_stride + k0 * L::kActivationBytes;
      for (size_t t = 0; t < token_count; ++t) {
        prepare_row<S, L>(a0 + t * activation_stride, count, prepared.quad + t * quads);
      }
      for (size_t g = 0; g < group_count; g += 2) {
        const size_t pair = g + 1 < group_count ? 2 : 1;
        const uint8_t* w[2] = {groups + g * group_bytes + k0 * kBytes,
                               groups + (g + pair - 1) * group_bytes + k0 * kBytes};
        typename S::Mask row_mask[2];
        for (size_t i = 0; i < 2; ++i) {
          const size_t first = 16 * (g + i), valid = first >= rows ? 0 : (rows - first < 16 ? rows - first : 16);
          row_mask[i] = S::mask(valid);
        }
        if (token_count == 1) {
          // One group at a time: a single forward stream, which the
          // hardware prefetchers follow best (two interleaved groups decoded
          // 1.4x slower on Zen 4).
          const uint8_t* a[1] = {a0};
          const int32_t(*prep[1])[8] = {prepared.quad};
          float* o = out + t0 * out_stride + 16 * g;
          micro<S, L, 1, 1, true>(w, a, prep, count, k0 > 0, o, out_stride, row_mask);
          if (pair == 2) micro<S, L, 1, 1, true>(w + 1, a, prep, count, k0 > 0, o + 16, out_stride, row_mask + 1);
          continue;
        }
        constexpr size_t kTile = S::kMicroTokens;
        for (size_t t = 0; t < token_count; t += kTile) {
          const size_t tc = token_count - t < kTile ? token_count - t : kTile;
          const uint8_t* a[kTile];
          const int32_t(*prep[kTile])[8];
          for (size_t i = 0; i < tc; ++i) {
            a[i] = a0 + (t + i) * activation_stride;
            prep[i] = prepared.quad + (t + i) * quads;
          }
          float* o = out + (t0 + t) * out_stride + 16 * g;
          if (pair == 2) {
            micro_tokens<S, L, 2>(tc, w, a, prep, count, k0 > 0, o, out_stride, row_mask);
          } else {
            micro_tokens<S, L, 1>(tc, w, a, prep, count, k0 > 0, o, out_stride, row_mask);
          }
        }
      }
    }
  }
}


// ------------------------------------------------------------ K formats

// Q8_K: float d, 256 int8 quants, 16 int16 sums of 16 quants.
constexpr size_t kQ8KBytes = 292;
constexpr size_t kQuants = 4;
constexpr size_t kSums = 260;
constexpr size_t kPrefillBlocks = 4;  // super-blocks per chunk in prefill (a group's ~10-13 KB)

struct Q4K {
  static constexpr size_t kBytes = 2368;
};
struct Q6K {
  static constexpr size_t kBytes = 3360;
};

template <class S>
FRUGAL_INLINE typename S::I broadcast_quants(const uint8_t* p) {
  int32_t q;
  std::memcpy(&q, p, 4);
  return S::set1(q);
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

// One super-block b of a group against T tokens' Q8_K blocks a, added to acc.
template <class S, int T>
FRUGAL_INLINE void q4_k_block(const uint8_t* b, const uint8_t* const* a, typename S::F* acc) {
  const typename S::I low_nibbles = S::set1(0x0F0F0F0F);
  typename S::I total[T], mins[T];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) total[t] = mins[t] = S::zero();
#pragma GCC unroll 4
  for (size_t c = 0; c < 4; ++c) {
    typename S::I lo_sum[T], hi_sum[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) lo_sum[t] = hi_sum[t] = S::zero();
#pragma GCC unroll 8
    for (size_t i = 0; i < 8; ++i) {
      const typename S::I v = S::load(b + 64 * (8 * c + i));
      const typename S::I lo = S::and_(v, low_nibbles);
      const typename S::I hi = S::and_(S::srli16(v, 4), low_nibbles);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        const uint8_t* q = a[t] + kQuants + 64 * c + 4 * i;
        lo_sum[t] = S::dot4(lo_sum[t], lo, broadcast_quants<S>(q));
        hi_sum[t] = S::dot4(hi_sum[t], hi, broadcast_quants<S>(q + 32));
      }
    }
    const typename S::I scale_lo = S::widen_u8(b + 2048 + 16 * (2 * c)), scale_hi = S::widen_u8(b + 2048 + 16 * (2 * c + 1));
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      total[t] = S::add(total[t], S::add(S::mullo(lo_sum[t], scale_lo),
                                                             S::mullo(hi_sum[t], scale_hi)));
    }
  }
#pragma GCC unroll 8
  for (size_t s = 0; s < 8; ++s) {
    const typename S::I m = S::widen_u8(b + 2176 + 16 * s);
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      const int32_t sub_sum = sum_at(a[t], 2 * s) + sum_at(a[t], 2 * s + 1);
      mins[t] = S::add(mins[t], S::mullo(m, S::set1(sub_sum)));
    }
  }
  const typename S::F d = S::halves(b + 2304), dmin = S::halves(b + 2336);
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    const typename S::F da = S::set1_f(d_of(a[t]));
    acc[t] = S::fmadd(S::to_float(total[t]), S::mul(d, da), acc[t]);
    acc[t] = S::fnmadd(S::to_float(mins[t]), S::mul(dmin, da), acc[t]);
  }
}

template <class S, int T>
FRUGAL_INLINE void q6_k_block(const uint8_t* b, const uint8_t* const* a, typename S::F* acc) {
  const typename S::I low_nibbles = S::set1(0x0F0F0F0F), two_bits = S::set1(0x30303030);
  typename S::I total[T];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) total[t] = S::zero();
  // Per half of the super-block (h) and of its 32-element rows (half):
  // each ql / qh vector is loaded once and gives the quants of four
  // 16-element sub-blocks (kk = 0..3).
#pragma GCC unroll 2
  for (size_t h = 0; h < 2; ++h) {
#pragma GCC unroll 2
    for (size_t half = 0; half < 2; ++half) {
      typename S::I sum[4][T];
#pragma GCC unroll 4
      for (size_t kk = 0; kk < 4; ++kk) {
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t) sum[kk][t] = S::set1(-32 * sum_at(a[t], 8 * h + 2 * kk + half));
      }
#pragma GCC unroll 4
      for (size_t i = 4 * half; i < 4 * half + 4; ++i) {
        const uint8_t* step = b + 192 * (8 * h + i);
        const typename S::I ql_a = S::load(step);
        const typename S::I ql_b = S::load(step + 64);
        const typename S::I qh = S::load(step + 128);
        // Low 4 bits from ql (kk 0, 1: low nibbles of a, b; kk 2, 3: high
        // nibbles), bits 2kk..2kk+1 of qh moved to bits 4..5.
        const typename S::I q[4] = {
            S::or_(S::and_(ql_a, low_nibbles), S::and_(S::slli16(qh, 4), two_bits)),
            S::or_(S::and_(ql_b, low_nibbles), S::and_(S::slli16(qh, 2), two_bits)),
            S::or_(S::and_(S::srli16(ql_a, 4), low_nibbles), S::and_(qh, two_bits)),
            S::or_(S::and_(S::srli16(ql_b, 4), low_nibbles),
                            S::and_(S::srli16(qh, 2), two_bits))};
#pragma GCC unroll 4
        for (size_t kk = 0; kk < 4; ++kk) {
#pragma GCC unroll 4
          for (int t = 0; t < T; ++t) {
            sum[kk][t] = S::dot4(sum[kk][t], q[kk],
                                             broadcast_quants<S>(a[t] + kQuants + 128 * h + 32 * kk + 4 * i));
          }
        }
      }
#pragma GCC unroll 4
      for (size_t kk = 0; kk < 4; ++kk) {
        const typename S::I scale = S::widen_i8(b + 3072 + 16 * (8 * h + 2 * kk + half));
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t) total[t] = S::add(total[t], S::mullo(sum[kk][t], scale));
      }
    }
  }
  const typename S::F d = S::halves(b + 3328);
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    acc[t] = S::fmadd(S::to_float(total[t]), S::mul(d, S::set1_f(d_of(a[t]))), acc[t]);
  }
}

// T tokens over super-blocks [0, count) of one group, onto the outputs.
template <class S, class L, int T, bool Decode>
void micro_k(const uint8_t* w, const uint8_t* const* a_first, size_t count, bool accumulate, float* out,
             size_t out_stride, typename S::Mask row_mask) {
  typename S::F acc[T];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    acc[t] = accumulate ? S::load_f(out + t * out_stride, row_mask) : S::zero_f();
  }
  for (size_t k = 0; k < count; ++k) {
    const uint8_t* b = w + k * L::kBytes;
    const uint8_t* a[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) a[t] = a_first[t] + k * kQ8KBytes;
    if constexpr (Decode) {
      for (size_t line = 0; line < L::kBytes; line += 512) {
        _mm_prefetch(reinterpret_cast<const char*>(b + kPackedPrefetchBytes + line), _MM_HINT_T0);
      }
    }
    if constexpr (L::kBytes == Q4K::kBytes) {
      q4_k_block<S, T>(b, a, acc);
    } else {
      q6_k_block<S, T>(b, a, acc);
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) S::store_f(out + t * out_stride, row_mask, acc[t]);
}

template <class S, class L>
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
      const uint8_t* a0 = activations + t0 * activation_stride + k0 * kQ8KBytes;
      for (size_t g = 0; g < group_count; ++g) {
        const uint8_t* w = groups + g * group_bytes + k0 * L::kBytes;
        const size_t first = 16 * g, valid = rows - first < 16 ? rows - first : 16;
        const typename S::Mask row_mask = S::mask(valid);
        float* o = out + t0 * out_stride + first;
        for (size_t t = 0; t < token_count; t += kMicroTokens) {
          const size_t tc = token_count - t < kMicroTokens ? token_count - t : kMicroTokens;
          const uint8_t* a[kMicroTokens];
          for (size_t i = 0; i < tc; ++i) a[i] = a0 + (t + i) * activation_stride;
          float* ot = o + t * out_stride;
          switch (tc) {
            case 1:
              if (token_count == 1) {
                micro_k<S, L, 1, true>(w, a, count, k0 > 0, ot, out_stride, row_mask);
              } else {
                micro_k<S, L, 1, false>(w, a, count, k0 > 0, ot, out_stride, row_mask);
              }
              break;
            case 2: micro_k<S, L, 2, false>(w, a, count, k0 > 0, ot, out_stride, row_mask); break;
            case 3: micro_k<S, L, 3, false>(w, a, count, k0 > 0, ot, out_stride, row_mask); break;
            default: micro_k<S, L, 4, false>(w, a, count, k0 > 0, ot, out_stride, row_mask); break;
          }
        }
      }
    }
  }
}


// The kernels of a target, for install_packed_*.
template <class S>
void install_packed_kernels(KernelSet& set) {
  set.dot_packed[static_cast<size_t>(PackedLayout::Q8_0x16)] = dot_packed<S, LayoutQ8_0>;
  set.dot_packed[static_cast<size_t>(PackedLayout::Q4_0x16)] = dot_packed<S, LayoutQ4_0>;
  set.dot_packed[static_cast<size_t>(PackedLayout::Q4_1x16)] = dot_packed<S, LayoutQ4_1>;
  set.dot_packed[static_cast<size_t>(PackedLayout::Q5_0x16)] = dot_packed<S, LayoutQ5_0>;
  set.dot_packed[static_cast<size_t>(PackedLayout::Q5_1x16)] = dot_packed<S, LayoutQ5_1>;
  set.dot_packed[static_cast<size_t>(PackedLayout::Q4_Kx16)] = dot_packed_k<S, Q4K>;
  set.dot_packed[static_cast<size_t>(PackedLayout::Q6_Kx16)] = dot_packed_k<S, Q6K>;
}

}  // namespace
}  // namespace frugal
