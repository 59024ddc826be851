// avx512 kernels for repacked weights (packed_weights.h; see kernel_set.h
// for the rules of SIMD files).
//
// Lane r of every weight vector belongs to row r of a 16-row group, so a
// dpbusd against 4 activation quants broadcast to all lanes adds that part
// of the block's dot product for 16 rows at once; the vectors of a block
// finish it in int32 (exact), seeded with -offset * sum(activation block)
// because the weights are unsigned (Q8_0 as q + 128, Q4_0 nibbles as q + 8,
// Q5_0 as q + 16; Q4_1 / Q5_1 add m_w * s_a per block instead).
// One convert and one FMA by d_w (per lane) * d_a (broadcast) per block and
// token add it to float sums that are already the 16 outputs: no gathers, no
// permutes, no horizontal reductions. The result of a token does not depend
// on which tokens it is multiplied with (same operations in the same order),
// so batched and one-by-one products agree bit for bit.
//
// A micro-tile is 2 (or 1) groups x up to 4 tokens. The activations of a
// chunk of tokens and blocks are prepared once per call (seeds and float d,
// per quad of blocks); chunks after the first accumulate onto the outputs.
// Decode (1 token) takes all blocks in one chunk and prefetches ahead.
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

// Decode prefetches this far ahead in the packed stream (laid out in the
// order a forward pass reads it, so it runs on into the next matrix).
// Zen 4, 1 and 2 threads: the same speed as none; kept for CPUs whose
// streamers stop at 4 KiB page ends.
constexpr size_t kPackedPrefetchBytes = 65536;
constexpr size_t kChunkTokens = 64;
constexpr size_t kMicroTokens = 4;
constexpr size_t kScratchQuads = 512;  // prepared quads of blocks, all tokens of a chunk

// Per quad of activation blocks: 4 int32 seeds, then 4 float d.
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
template <class L>
void prepare_row(const uint8_t* a, size_t count, int32_t (*dst)[8]) {
  const __m256i ones = _mm256_set1_epi8(1);
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
      const __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + L::kActivationQuants));
      // sum(q) = sum((q ^ 0x80) * 1) - 128 * 32, all in int32.
      const __m256i biased = _mm256_xor_si256(q, _mm256_set1_epi8(static_cast<char>(0x80)));
      const __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), biased, ones);
      __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
      h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
      dst[k / 4][k % 4] = -L::kOffset * (_mm_cvtsi128_si32(h) - 128 * 32);
    }
  }
}

// G groups x T tokens over blocks [0, count) of a chunk. w[g]: the group's
// first block of the chunk; a[t]: the token's first activation block;
// prep[t]: its prepared quads.
template <class L, int G, int T, bool Decode>
void micro(const uint8_t* const* w, const uint8_t* const* a, const int32_t (*const* prep)[8], size_t count,
           bool accumulate, float* out, size_t out_stride, const __mmask16* row_mask) {
  constexpr size_t kBytes = L::kBytes;
  constexpr size_t kA = L::kActivationBytes, kQ = L::kActivationQuants;
  __m512 acc[G][T];
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      acc[g][t] = accumulate ? _mm512_maskz_loadu_ps(row_mask[g], out + t * out_stride + 16 * g) : _mm512_setzero_ps();
    }
  }
  for (size_t k = 0; k < count; ++k) {
    if constexpr (Decode) {
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) {
        _mm_prefetch(reinterpret_cast<const char*>(w[g] + k * kBytes + kPackedPrefetchBytes), _MM_HINT_T0);
      }
    }
    __m512i sum[G][T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m512i seed = L::kMin ? _mm512_setzero_si512() : _mm512_set1_epi32(prep[t][k / 4][k % 4]);
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) sum[g][t] = seed;
    }
#pragma GCC unroll 8
    for (size_t j = 0; j < L::kVectors; ++j) {
      __m512i v[G];
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) v[g] = _mm512_loadu_si512(w[g] + k * kBytes + 64 * j);
      if constexpr (L::kVectors == 8) {
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          int32_t q;
          std::memcpy(&q, a[t] + k * kA + kQ + 4 * j, 4);
          const __m512i x = _mm512_set1_epi32(q);
#pragma GCC unroll 8
          for (int g = 0; g < G; ++g) sum[g][t] = _mm512_dpbusd_epi32(sum[g][t], v[g], x);
        }
      } else {
        const __m512i low_nibbles = _mm512_set1_epi8(0x0F);
        __m512i lo[G], hi[G];
#pragma GCC unroll 8
        for (int g = 0; g < G; ++g) {
          lo[g] = _mm512_and_si512(v[g], low_nibbles);
          hi[g] = _mm512_and_si512(_mm512_srli_epi16(v[g], 4), low_nibbles);
          if constexpr (L::kHighBits) {
            // The fifth bits of these 8 elements, at bit 4 of their bytes.
            const __m512i bits = _mm512_loadu_si512(w[g] + k * kBytes + 64 * L::kVectors);
            const __m512i fifth = _mm512_set1_epi32(0x10101010);
            lo[g] = _mm512_or_si512(lo[g], _mm512_and_si512(_mm512_srli_epi32(bits, static_cast<unsigned>(j)), fifth));
            hi[g] = _mm512_or_si512(hi[g], _mm512_and_si512(_mm512_slli_epi32(bits, static_cast<unsigned>(4 - j)), fifth));
          }
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          int32_t q_lo, q_hi;
          std::memcpy(&q_lo, a[t] + k * kA + kQ + 4 * j, 4);
          std::memcpy(&q_hi, a[t] + k * kA + kQ + 16 + 4 * j, 4);
          const __m512i x_lo = _mm512_set1_epi32(q_lo), x_hi = _mm512_set1_epi32(q_hi);
#pragma GCC unroll 8
          for (int g = 0; g < G; ++g) {
            sum[g][t] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(sum[g][t], lo[g], x_lo), hi[g], x_hi);
          }
        }
      }
    }
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      const __m512 dw =
          _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[g] + k * kBytes + L::kScales)));
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        float da;
        std::memcpy(&da, &prep[t][k / 4][4 + k % 4], 4);
        acc[g][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[g][t]), _mm512_mul_ps(dw, _mm512_set1_ps(da)), acc[g][t]);
      }
      if constexpr (L::kMin) {
        // + m_w * s_a, s_a = d_a * sum(q_a) as the Q8_1 block carries it.
        const __m512 mw =
            _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[g] + k * kBytes + L::kScales + 32)));
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
          float sa;
          std::memcpy(&sa, &prep[t][k / 4][k % 4], 4);
          acc[g][t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(sa), acc[g][t]);
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(out + t * out_stride + 16 * g, row_mask[g], acc[g][t]);
  }
}

// Dispatches a micro-tile of `tokens` (1..4) tokens.
template <class L, int G>
void micro_tokens(size_t tokens, const uint8_t* const* w, const uint8_t* const* a, const int32_t (*const* prep)[8],
                  size_t count, bool accumulate, float* out, size_t out_stride, const __mmask16* row_mask) {
  switch (tokens) {
    case 1: micro<L, G, 1, false>(w, a, prep, count, accumulate, out, out_stride, row_mask); break;
    case 2: micro<L, G, 2, false>(w, a, prep, count, accumulate, out, out_stride, row_mask); break;
    case 3: micro<L, G, 3, false>(w, a, prep, count, accumulate, out, out_stride, row_mask); break;
    default: micro<L, G, 4, false>(w, a, prep, count, accumulate, out, out_stride, row_mask); break;
  }
}

template <class L>
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
        prepare_row<L>(a0 + t * activation_stride, count, prepared.quad + t * quads);
      }
      for (size_t g = 0; g < group_count; g += 2) {
        const size_t pair = g + 1 < group_count ? 2 : 1;
        const uint8_t* w[2] = {groups + g * group_bytes + k0 * kBytes,
                               groups + (g + pair - 1) * group_bytes + k0 * kBytes};
        __mmask16 row_mask[2];
        for (size_t i = 0; i < 2; ++i) {
          const size_t first = 16 * (g + i), valid = first >= rows ? 0 : (rows - first < 16 ? rows - first : 16);
          row_mask[i] = static_cast<__mmask16>((1u << valid) - 1);
        }
        if (token_count == 1) {
          // One group at a time: a single forward stream, which the
          // hardware prefetchers follow best (two interleaved groups decoded
          // 1.4x slower on Zen 4).
          const uint8_t* a[1] = {a0};
          const int32_t(*prep[1])[8] = {prepared.quad};
          float* o = out + t0 * out_stride + 16 * g;
          micro<L, 1, 1, true>(w, a, prep, count, k0 > 0, o, out_stride, row_mask);
          if (pair == 2) micro<L, 1, 1, true>(w + 1, a, prep, count, k0 > 0, o + 16, out_stride, row_mask + 1);
          continue;
        }
        for (size_t t = 0; t < token_count; t += kMicroTokens) {
          const size_t tc = token_count - t < kMicroTokens ? token_count - t : kMicroTokens;
          const uint8_t* a[kMicroTokens];
          const int32_t(*prep[kMicroTokens])[8];
          for (size_t i = 0; i < tc; ++i) {
            a[i] = a0 + (t + i) * activation_stride;
            prep[i] = prepared.quad + (t + i) * quads;
          }
          float* o = out + (t0 + t) * out_stride + 16 * g;
          if (pair == 2) {
            micro_tokens<L, 2>(tc, w, a, prep, count, k0 > 0, o, out_stride, row_mask);
          } else {
            micro_tokens<L, 1>(tc, w, a, prep, count, k0 > 0, o, out_stride, row_mask);
          }
        }
      }
    }
  }
}

}  // namespace

void install_packed_avx512(KernelSet& set) {
  set.dot_packed[static_cast<size_t>(PackedLayout::Q8_0x16)] = dot_packed<LayoutQ8_0>;
  set.dot_packed[static_cast<size_t>(PackedLayout::Q4_0x16)] = dot_packed<LayoutQ4_0>;
  set.dot_packed[static_cast<size_t>(PackedLayout::Q4_1x16)] = dot_packed<LayoutQ4_1>;
  set.dot_packed[static_cast<size_t>(PackedLayout::Q5_0x16)] = dot_packed<LayoutQ5_0>;
  set.dot_packed[static_cast<size_t>(PackedLayout::Q5_1x16)] = dot_packed<LayoutQ5_1>;
}

}  // namespace frugal
