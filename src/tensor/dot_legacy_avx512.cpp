// avx512 kernels for the legacy formats (see kernel_set.h for the rules).
//
// Quantized dot tiles (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 weights against Q8_0/Q8_1
// activations) take 4 blocks of 32 per step, as two zmm registers of bytes:
// `lo` holds elements 0..15 of each of the 4 blocks, `hi` elements 16..31,
// so int32 lanes 4k..4k+3 of both belong to block k. Weights and activations
// are gathered into that order with word permutes (vpermt2w) of whole-vector
// loads, which also pick out the fp16 scales ([d0 x4, d1 x4, d2 x4, d3 x4],
// converted by F16C).
//  - weights become unsigned bytes (nibbles; 5-bit values; Q8_0 as q + 128),
//    so VNNI's dpbusd (unsigned x signed) multiplies them with the signed
//    activations directly. The offset (8, 16, 128) comes back as
//    -offset * sum(activations), which seeds the dpbusd accumulator: the
//    integer block sums are exact;
//  - the two dpbusd (lo, hi) of a block quad go into one int32 vector,
//    converted to float and scaled by the product of the block scales by FMA;
//  - Q4_1/Q5_1 add m * s (s = d_a * sum(q_a) from the Q8_1 block) per block.
// A micro-tile is 4 weight rows x 1, 2 or 4 tokens: each weight quad is
// unpacked once for all its tokens and each activation quad once for all
// rows. Remainder rows and tokens repeat the last one (computed, not stored);
// a last partial quad reads through masked loads (zeros past the row).
// Decode (1 token) streams 4 rows at a time and prefetches the next 4.
//
// F32/F16/BF16 live in dot_plain_avx512.cpp; the activation quantizers come
// from the AVX2 level (they are memory-bound and bit-exact either way).
// GCC 12's AVX-512 headers trip -Wuninitialized inside their own intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "frugal/tensor_type.h"
#include "tensor/dot_legacy_simd.h"
#include "tensor/kernel_set.h"

#define FRUGAL_INLINE inline __attribute__((always_inline))

namespace frugal {

namespace {

constexpr size_t kBlock = 32;

// A 32-word permute index: word i of the result is word v[i] of the
// concatenation of two 64-byte loads (32 + j: word j of the second).
struct WordIndex {
  uint16_t v[32];
};

// Index of the word at byte p of a block group, the first load starting at
// byte s1 and the second at s2 (the first preferred); 0xFFFF if neither
// covers it (caught by `covered`).
constexpr uint16_t word_at(size_t p, size_t s1, size_t s2) {
  if (p % 2 == s1 % 2 && p >= s1 && p + 2 <= s1 + 64) return static_cast<uint16_t>((p - s1) / 2);
  if (p % 2 == s2 % 2 && p >= s2 && p + 2 <= s2 + 64) return static_cast<uint16_t>(32 + (p - s2) / 2);
  return 0xFFFF;
}

constexpr bool covered(const WordIndex& w, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    if (w.v[i] == 0xFFFF) return false;
  }
  return true;
}

// The 16-byte pieces at bytes o + k * block_bytes, k = 0..3, one after another.
constexpr WordIndex pieces(size_t o, size_t block_bytes, size_t s1, size_t s2) {
  WordIndex w{};
  for (size_t k = 0; k < 4; ++k) {
    for (size_t j = 0; j < 8; ++j) w.v[8 * k + j] = word_at(o + k * block_bytes + 2 * j, s1, s2);
  }
  return w;
}

// The words at bytes o + k * block_bytes, each repeated 4 times (block k's
// fp16 for lanes 4k..4k+3).
constexpr WordIndex scales(size_t o, size_t block_bytes, size_t s1, size_t s2) {
  WordIndex w{};
  for (size_t k = 0; k < 4; ++k) {
    for (size_t j = 0; j < 4; ++j) w.v[4 * k + j] = word_at(o + k * block_bytes, s1, s2);
  }
  return w;
}

// The two 16-bit halves of the 32-bit qh at o + k * block_bytes: low halves
// of blocks 0..3, then high halves.
constexpr WordIndex high_bits(size_t o, size_t block_bytes, size_t s1, size_t s2) {
  WordIndex w{};
  for (size_t k = 0; k < 4; ++k) {
    w.v[k] = word_at(o + k * block_bytes, s1, s2);
    w.v[4 + k] = word_at(o + k * block_bytes + 2, s1, s2);
  }
  return w;
}

FRUGAL_INLINE __m512i index(const WordIndex& w) { return _mm512_loadu_si512(w.v); }

// 64 bytes at base + offset; in a tail step only those below `limit`, the
// rest read as zeros and never touched.
template <bool Tail>
FRUGAL_INLINE __m512i load64(const uint8_t* base, size_t offset, size_t limit) {
  if constexpr (Tail) {
    const size_t count = limit > offset ? limit - offset : 0;
    const __mmask64 mask = count >= 64 ? ~__mmask64{0} : (__mmask64{1} << count) - 1;
    return _mm512_maskz_loadu_epi8(mask, base + offset);
  } else {
    return _mm512_loadu_si512(base + offset);
  }
}

FRUGAL_INLINE __m512 halves_to_f32(__m512i a, const WordIndex& w, __m512i b) {
  return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutex2var_epi16(a, index(w), b)));
}

// A quad of blocks with 8-bit quants at byte `quants` of each `Bytes`-byte
// block and the fp16 d at byte 0 (and `second`, e.g. Q8_1's s, at byte 2).
template <size_t Bytes, size_t Quants>
struct Bytes8 {
  static constexpr size_t kA2 = 4 * Bytes - 128;  // the loads: [0, 64), [64, 128), [kA2, +64), [kC, +64)
  static constexpr size_t kC = 4 * Bytes - 64;
  static constexpr WordIndex kLo = pieces(Quants, Bytes, 0, 64);
  static constexpr WordIndex kHi = pieces(Quants + 16, Bytes, kA2, kC);
  static constexpr WordIndex kD = scales(0, Bytes, 0, 64);
  static constexpr WordIndex kSecond = scales(2, Bytes, 0, 64);
  static_assert(covered(kLo, 32) && covered(kHi, 32) && covered(kD, 16) && covered(kSecond, 16));
  // Q8_0: the high pieces but the last 8 bytes come from [0, 128) too; those
  // 8 bytes (words 28..31) from a broadcast load of [128, 136): no
  // overlapping loads, which streams better from memory.
  static constexpr bool kTight = Bytes == 34;
  static constexpr WordIndex kHiTight = pieces(Quants + 16, Bytes, 0, 64);  // words 28..31 unused
  template <bool Tail, bool Second>
  static FRUGAL_INLINE void unpack(const uint8_t* g, size_t limit, __m512i& lo, __m512i& hi, __m512& d,
                                   __m512& second) {
    const __m512i a = load64<Tail>(g, 0, limit);
    const __m512i b = load64<Tail>(g, 64, limit);
    lo = _mm512_permutex2var_epi16(a, index(kLo), b);
    if constexpr (kTight) {
      hi = _mm512_permutex2var_epi16(a, index(kHiTight), b);
      uint64_t last = 0;
      if (!Tail || limit >= 136) std::memcpy(&last, g + 128, 8);
      hi = _mm512_mask_mov_epi16(hi, 0xF0000000u, _mm512_set1_epi64(static_cast<long long>(last)));
    } else {
      hi = _mm512_permutex2var_epi16(load64<Tail>(g, kA2, limit), index(kHi), load64<Tail>(g, kC, limit));
    }
    d = halves_to_f32(a, kD, b);
    if constexpr (Second) second = halves_to_f32(a, kSecond, b);
  }
};

// A quad of blocks with nibbles at byte `quants` (16 bytes: element j low,
// j + 16 high), fp16 d at 0, m at `min` (0: none) and the 32-bit fifth bits
// at `high` (0: none).
template <size_t Bytes, size_t Quants, size_t Min, size_t High>
struct Nibbles {
  // The loads: [0, 64) and, masked, [64, 4 * Bytes): overlapping loads
  // stream worse from memory.
  static constexpr size_t kA2 = 64;
  static constexpr WordIndex kQuants = pieces(Quants, Bytes, 0, kA2);
  static constexpr WordIndex kD = scales(0, Bytes, 0, kA2);
  static constexpr WordIndex kM = scales(Min, Bytes, 0, kA2);
  static constexpr WordIndex kHigh = high_bits(High, Bytes, 0, kA2);
  static_assert(covered(kQuants, 32) && covered(kD, 16) && covered(kM, 16) && covered(kHigh, 8));
  template <bool Tail>
  static FRUGAL_INLINE void unpack(const uint8_t* g, size_t limit, __m512i& lo, __m512i& hi, __m512& d, __m512& m) {
    const __m512i a = load64<Tail>(g, 0, limit);
    const __m512i a2 = load64<true>(g, kA2, Tail ? limit : 4 * Bytes);
    const __m512i q = _mm512_permutex2var_epi16(a, index(kQuants), a2);
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    lo = _mm512_and_si512(q, low4);
    hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), low4);
    if constexpr (High != 0) {
      const __m128i bits = _mm512_castsi512_si128(_mm512_permutex2var_epi16(a, index(kHigh), a2));
      const __m512i sixteen = _mm512_set1_epi8(16);
      lo = _mm512_mask_add_epi8(lo, _cvtu64_mask64(static_cast<uint64_t>(_mm_cvtsi128_si64(bits))), lo, sixteen);
      hi = _mm512_mask_add_epi8(hi, _cvtu64_mask64(static_cast<uint64_t>(_mm_extract_epi64(bits, 1))), hi, sixteen);
    }
    d = halves_to_f32(a, kD, a2);
    if constexpr (Min != 0) m = halves_to_f32(a, kM, a2);
  }
};

// Weight formats: unsigned quants u with value d * (u - kOffset) (+ m).
struct WeightQ8_0 {
  static constexpr size_t kBytes = 34;
  static constexpr int kOffset = 128;
  static constexpr bool kMin = false;
  template <bool Tail>
  static FRUGAL_INLINE void unpack(const uint8_t* g, size_t limit, __m512i& lo, __m512i& hi, __m512& d, __m512& m) {
    Bytes8<34, 2>::unpack<Tail, false>(g, limit, lo, hi, d, m);
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    lo = _mm512_xor_si512(lo, flip);
    hi = _mm512_xor_si512(hi, flip);
  }
};

struct WeightQ4_0 : Nibbles<18, 2, 0, 0> {
  static constexpr size_t kBytes = 18;
  static constexpr int kOffset = 8;
  static constexpr bool kMin = false;
};

struct WeightQ4_1 : Nibbles<20, 4, 2, 0> {
  static constexpr size_t kBytes = 20;
  static constexpr int kOffset = 0;
  static constexpr bool kMin = true;
};

struct WeightQ5_0 : Nibbles<22, 6, 0, 2> {
  static constexpr size_t kBytes = 22;
  static constexpr int kOffset = 16;
  static constexpr bool kMin = false;
};

struct WeightQ5_1 : Nibbles<24, 8, 2, 4> {
  static constexpr size_t kBytes = 24;
  static constexpr int kOffset = 0;
  static constexpr bool kMin = true;
};

// Activation formats: signed quants, d, and (Q8_1) s = d * sum(q).
struct ActQ8_0 {
  static constexpr size_t kBytes = 34;
  template <bool Tail>
  static FRUGAL_INLINE void unpack(const uint8_t* g, size_t limit, __m512i& lo, __m512i& hi, __m512& d, __m512& s) {
    Bytes8<34, 2>::unpack<Tail, false>(g, limit, lo, hi, d, s);
  }
};

struct ActQ8_1 {
  static constexpr size_t kBytes = 36;
  template <bool Tail>
  static FRUGAL_INLINE void unpack(const uint8_t* g, size_t limit, __m512i& lo, __m512i& hi, __m512& d, __m512& s) {
    Bytes8<36, 4>::unpack<Tail, true>(g, limit, lo, hi, d, s);
  }
};

// Blocks b .. b+3 of an R x T micro-tile (in a tail step, only the blocks
// below the byte limits).
template <class W, class A, int R, int T, bool Tail>
FRUGAL_INLINE void tile_step(const uint8_t* const* wrow, const uint8_t* const* arow, size_t b, size_t weight_limit,
                             size_t activation_limit, __m512 (&acc)[R][T]) {
  __m512i alo[T], ahi[T], base[T];
  __m512 ad[T], as[T];
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
    A::template unpack<Tail>(arow[t] + b * A::kBytes, activation_limit, alo[t], ahi[t], ad[t], as[t]);
    base[t] = _mm512_setzero_si512();
    if constexpr (W::kOffset != 0) {
      const __m512i offset = _mm512_set1_epi8(static_cast<char>(W::kOffset));
      const __m512i sum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(base[t], offset, alo[t]), offset, ahi[t]);
      base[t] = _mm512_sub_epi32(base[t], sum);
    }
    // 4 lanes of each block add m * s; the 1/4 is exact.
    if constexpr (W::kMin) as[t] = _mm512_mul_ps(as[t], _mm512_set1_ps(0.25f));
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    __m512i wlo, whi;
    __m512 wd, wm;
    W::template unpack<Tail>(wrow[r] + b * W::kBytes, weight_limit, wlo, whi, wd, wm);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(base[t], wlo, alo[t]), whi, ahi[t]);
      acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(wd, ad[t]), acc[r][t]);
      if constexpr (W::kMin) acc[r][t] = _mm512_fmadd_ps(wm, as[t], acc[r][t]);
    }
  }
}

// rows <= R weight rows against tokens <= T activation rows.
template <class W, class A, int R, int T>
void micro_tile(const uint8_t* weights, size_t weight_stride, const uint8_t* activations, size_t activation_stride,
                size_t blocks, size_t rows, size_t tokens, float* out, size_t out_stride) {
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
  size_t b = 0;
  if constexpr (T == 1) {
    // Decode streams the weights from memory: fetch the same place of the
    // next R rows ahead, as the hardware prefetcher starts late on short rows.
    const size_t ahead = R * weight_stride;
    for (; b + 4 <= blocks; b += 4) {
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const char* p = reinterpret_cast<const char*>(wrow[r] + b * W::kBytes + ahead);
        _mm_prefetch(p, _MM_HINT_T0);
        _mm_prefetch(p + 64, _MM_HINT_T0);
        if constexpr (4 * W::kBytes > 128) _mm_prefetch(p + 128, _MM_HINT_T0);
      }
      tile_step<W, A, R, T, false>(wrow, arow, b, 0, 0, acc);
    }
  }
  for (; b + 4 <= blocks; b += 4) tile_step<W, A, R, T, false>(wrow, arow, b, 0, 0, acc);
  if (b < blocks) {
    tile_step<W, A, R, T, true>(wrow, arow, b, (blocks - b) * W::kBytes, (blocks - b) * A::kBytes, acc);
  }
  for (size_t t = 0; t < tokens; ++t) {
    for (size_t r = 0; r < rows; ++r) out[t * out_stride + r] = _mm512_reduce_add_ps(acc[r][t]);
  }
}

constexpr size_t kTileRows = 4;
constexpr size_t kTileTokens = 4;

template <class W, class A>
void dot_tile_quant(const uint8_t* weights, size_t weight_stride, const uint8_t* activations,
                    size_t activation_stride, size_t n, size_t rows, size_t tokens, float* out, size_t out_stride) {
  const size_t blocks = n / kBlock;
  for (size_t r0 = 0; r0 < rows; r0 += kTileRows) {
    const size_t row_count = rows - r0 < kTileRows ? rows - r0 : kTileRows;
    const uint8_t* w = weights + r0 * weight_stride;
    for (size_t t0 = 0; t0 < tokens; t0 += kTileTokens) {
      const size_t token_count = tokens - t0 < kTileTokens ? tokens - t0 : kTileTokens;
      const uint8_t* a = activations + t0 * activation_stride;
      float* o = out + t0 * out_stride + r0;
      if (token_count == 1) {
        micro_tile<W, A, 4, 1>(w, weight_stride, a, activation_stride, blocks, row_count, 1, o, out_stride);
      } else if (token_count == 2) {
        micro_tile<W, A, 4, 2>(w, weight_stride, a, activation_stride, blocks, row_count, 2, o, out_stride);
      } else {
        micro_tile<W, A, 4, 4>(w, weight_stride, a, activation_stride, blocks, row_count, token_count, o,
                               out_stride);
      }
    }
  }
}

}  // namespace

void install_legacy_avx512(KernelSet& set) {
  set.dot_tile[type_slot(TensorType::Q8_0)] = dot_tile_quant<WeightQ8_0, ActQ8_0>;
  set.dot_tile[type_slot(TensorType::Q4_0)] = dot_tile_quant<WeightQ4_0, ActQ8_0>;
  set.dot_tile[type_slot(TensorType::Q4_1)] = dot_tile_quant<WeightQ4_1, ActQ8_1>;
  set.dot_tile[type_slot(TensorType::Q5_0)] = dot_tile_quant<WeightQ5_0, ActQ8_0>;
  set.dot_tile[type_slot(TensorType::Q5_1)] = dot_tile_quant<WeightQ5_1, ActQ8_1>;
  install_plain_avx512(set);
}

}  // namespace frugal
