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
// Prefill tiles of Q8_0 / Q4_0 / Q5_0 (4 tokens or more) take the packed
// path below instead (one weight row per lane, see "packed prefill").
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
#include "tensor/simd_avx512.h"

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
    // Decode streams the weights from memory: fetch the same place of rows
    // kDecodePrefetchBytes ahead, as the hardware prefetcher starts late on
    // short rows.
    const size_t group = R * weight_stride;
    const size_t ahead = (kDecodePrefetchBytes + group - 1) / group * group;
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

// ------------------------------------------------------------ packed prefill
//
// Prefill tiles (at least kPackedMinTokens tokens) of Q8_0 / Q4_0 / Q5_0
// weights repack each chunk of weights once and then keep one weight row per
// int32 lane: for a group of 16 rows and one block, register j (0..7) holds
// quants 4j..4j+3 of each row (as unsigned bytes). A dpbusd against the
// activation's quants 4j..4j+3 broadcast to all lanes then adds that part of
// the block's dot product for 16 rows at once; 8 of them finish the block in
// int32 (exact), seeded with -offset * sum(activation block). One convert and
// one FMA by d_w (per lane) * d_a (broadcast) per block and token add it to
// float sums that are already the 16 outputs: no horizontal reductions.
//  - the chunk is kPackedRows rows x kPackedBlocks blocks (36 bytes per row
//    and block: 8 quant dwords + the float d), small enough for L1/L2 while
//    every token of the tile passes over it;
//  - the activations are read in place (dword broadcasts); per chunk, each
//    token's block scales (as float) and offset sums are prepared once;
//  - a micro-tile is 2 (or 1) groups of 16 rows x up to kPackedTokens tokens.
//    Chunks after the first accumulate onto the outputs.

template <class X, class Y>
constexpr bool kSame = false;
template <class X>
constexpr bool kSame<X, X> = true;

constexpr size_t kPackedRows = 64;     // 4 groups of 16
constexpr size_t kPackedBlocks = 32;   // blocks per chunk
constexpr size_t kPackedTokens = 4;    // tokens per micro-tile
constexpr size_t kPackedMaxTokens = 64;
constexpr size_t kPackedMinTokens = 4;
constexpr size_t kGroupBytes = 9 * 64;  // per group and block: 8 quant vectors + 16 float d

// Scratch of the packed path (per thread; SIMD files keep to plain arrays).
struct alignas(64) PackedScratch {
  uint8_t weights[kPackedRows / 16][kPackedBlocks][kGroupBytes];
  // Per token and quad of blocks: 4 int32 seeds, then 4 float d.
  int32_t act[kPackedMaxTokens][kPackedBlocks / 4][8];
};
thread_local PackedScratch packed_scratch;

// Two rows (p and p + 8 of a group) of one block as 16 dwords of unsigned
// quants: row a's 8 dwords (elements 0..31 in order), then row b's.
struct PackQ8_0 {
  static constexpr size_t kBytes = 34;
  static constexpr int kOffset = 128;
  static FRUGAL_INLINE __m512i pair(const uint8_t* a, const uint8_t* b) {
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 2))),
                                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2)), 1);
    return _mm512_xor_si512(v, _mm512_set1_epi8(static_cast<char>(0x80)));
  }
};

// Nibbles: 16 bytes of qs at `Quants`, element j low, j + 16 high; Q5_0's
// fifth bits (bit j: element j) at byte 2.
template <size_t Bytes, size_t Quants, bool High>
struct PackNibbles {
  static constexpr size_t kBytes = Bytes;
  static constexpr int kOffset = High ? 16 : 8;
  static FRUGAL_INLINE __m512i pair(const uint8_t* a, const uint8_t* b) {
    const __m256i qa = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + Quants)));
    const __m256i qb = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + Quants)));
    __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(qa), qb, 1);
    // 128-bit lanes 1 and 3 take the high nibbles.
    v = _mm512_mask_srli_epi16(v, 0xFF00FF00u, v, 4);
    v = _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
    if constexpr (High) {
      uint32_t ha, hb;
      std::memcpy(&ha, a + 2, 4);
      std::memcpy(&hb, b + 2, 4);
      const __mmask64 bits = _cvtu64_mask64(static_cast<uint64_t>(ha) | (static_cast<uint64_t>(hb) << 32));
      v = _mm512_mask_add_epi8(v, bits, v, _mm512_set1_epi8(16));
    }
    return v;
  }
};
using PackQ4_0 = PackNibbles<18, 2, false>;
using PackQ5_0 = PackNibbles<22, 6, true>;

// One round of the 16 x 8 dword transpose: swaps register bit `Rb` with lane
// bit `Lb` for all register pairs.
template <int Rb, int Lb>
FRUGAL_INLINE void transpose_round(__m512i (&z)[8]) {
  alignas(64) static constexpr int32_t kLo[16] = {
#define FRUGAL_LO(l) ((l) & Lb ? 16 + ((l) ^ Lb) : (l))
      FRUGAL_LO(0), FRUGAL_LO(1), FRUGAL_LO(2),  FRUGAL_LO(3),  FRUGAL_LO(4),  FRUGAL_LO(5),  FRUGAL_LO(6),  FRUGAL_LO(7),
      FRUGAL_LO(8), FRUGAL_LO(9), FRUGAL_LO(10), FRUGAL_LO(11), FRUGAL_LO(12), FRUGAL_LO(13), FRUGAL_LO(14), FRUGAL_LO(15)};
#undef FRUGAL_LO
  alignas(64) static constexpr int32_t kHi[16] = {
#define FRUGAL_HI(l) ((l) & Lb ? 16 + (l) : ((l) | Lb))
      FRUGAL_HI(0), FRUGAL_HI(1), FRUGAL_HI(2),  FRUGAL_HI(3),  FRUGAL_HI(4),  FRUGAL_HI(5),  FRUGAL_HI(6),  FRUGAL_HI(7),
      FRUGAL_HI(8), FRUGAL_HI(9), FRUGAL_HI(10), FRUGAL_HI(11), FRUGAL_HI(12), FRUGAL_HI(13), FRUGAL_HI(14), FRUGAL_HI(15)};
#undef FRUGAL_HI
  const __m512i lo = _mm512_load_si512(kLo), hi = _mm512_load_si512(kHi);
#pragma GCC unroll 8
  for (int p = 0; p < 8; ++p) {
    if (p & Rb) continue;
    const __m512i x = z[p], y = z[p | Rb];
    z[p] = _mm512_permutex2var_epi32(x, lo, y);
    z[p | Rb] = _mm512_permutex2var_epi32(x, hi, y);
  }
}

// Packs rows [0, rows) (rows <= 16; the last repeats) x blocks [0, count) of
// one group: per block 8 quant vectors (lane = row) and 16 float d.
template <class P>
void pack_group(const uint8_t* weights, size_t weight_stride, size_t rows, size_t count, uint8_t (*out)[kGroupBytes]) {
  const uint8_t* row[16];
  for (size_t r = 0; r < 16; ++r) row[r] = weights + (r < rows ? r : rows - 1) * weight_stride;
  // The d of the 16 rows by two 8-lane gathers (64-bit offsets).
  alignas(64) int64_t offset[16];
  for (size_t r = 0; r < 16; ++r) offset[r] = static_cast<int64_t>(row[r] - weights);
  const __m512i offset_lo = _mm512_load_si512(offset), offset_hi = _mm512_load_si512(offset + 8);
  for (size_t k = 0; k < count; ++k) {
    const size_t o = k * P::kBytes;
    // z[p] = rows p and p + 8; after the three rounds z[j] = quants dword j
    // of rows 0..15 in lane order (register bits i3 i2 i1 <-> lane bits
    // j2 j1 j0 swapped, i0 being the lane's top bit already).
    __m512i z[8];
#pragma GCC unroll 8
    for (int p = 0; p < 8; ++p) z[p] = P::pair(row[p] + o, row[p + 8] + o);
    transpose_round<4, 4>(z);
    transpose_round<2, 2>(z);
    transpose_round<1, 1>(z);
    uint8_t* dst = out[k];
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) _mm512_store_si512(dst + 64 * j, z[j]);
    // Each gather reads the 4 bytes at d (d and the first quants).
    const __m256i d_lo = _mm512_i64gather_epi32(offset_lo, weights + o, 1);
    const __m256i d_hi = _mm512_i64gather_epi32(offset_hi, weights + o, 1);
    const __m256i d = _mm512_cvtepi32_epi16(_mm512_inserti64x4(_mm512_castsi256_si512(d_lo), d_hi, 1));
    _mm512_store_ps(dst + 512, _mm512_cvtph_ps(d));
  }
}

// Per quad of Q8_0 activation blocks from g: the seeds -offset * sum(q) and
// the float d of the (up to 4) blocks below `limit` bytes.
template <int Offset, bool Tail>
FRUGAL_INLINE void prepare_quad(const uint8_t* g, size_t limit, int32_t* dst) {
  __m512i lo, hi;
  __m512 d, unused;
  Bytes8<34, 2>::unpack<Tail, false>(g, limit, lo, hi, d, unused);
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, lo), ones, hi);
  s = _mm512_add_epi32(s, _mm512_shuffle_epi32(s, _MM_PERM_CDAB));
  s = _mm512_add_epi32(s, _mm512_shuffle_epi32(s, _MM_PERM_BADC));
  s = _mm512_mullo_epi32(s, _mm512_set1_epi32(-Offset));
  // Lanes 0, 4, 8, 12 of the seeds, then of d.
  const __m512i pick = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 0, 0, 0, 0, 0, 0, 0);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst),
                      _mm512_castsi512_si256(_mm512_permutex2var_epi32(s, pick, _mm512_castps_si512(d))));
}

template <int Offset>
void prepare_activations(const uint8_t* activations, size_t activation_stride, size_t tokens, size_t count,
                         int32_t (*out)[kPackedBlocks / 4][8]) {
  for (size_t t = 0; t < tokens; ++t) {
    const uint8_t* a = activations + t * activation_stride;
    size_t q = 0;
    for (; 4 * q + 4 <= count; ++q) prepare_quad<Offset, false>(a + 4 * q * 34, 0, out[t][q]);
    if (4 * q < count) prepare_quad<Offset, true>(a + 4 * q * 34, (count - 4 * q) * 34, out[t][q]);
  }
}

// G groups of 16 rows x T tokens over blocks [0, count) of a chunk.
template <int G, int T>
void packed_micro(const uint8_t (*const* wg)[kGroupBytes], const uint8_t* const* arow,
                  const int32_t (*const* prep)[8], size_t count, bool accumulate, float* out, size_t out_stride,
                  const __mmask16* row_mask) {
  __m512 acc[G][T];
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      acc[g][t] = accumulate ? _mm512_maskz_loadu_ps(row_mask[g], out + t * out_stride + 16 * g) : _mm512_setzero_ps();
    }
  }
  for (size_t k = 0; k < count; ++k) {
    __m512i sum[G][T];
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m512i seed = _mm512_set1_epi32(prep[t][k / 4][k % 4]);
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) sum[g][t] = seed;
    }
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      __m512i w[G];
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) w[g] = _mm512_load_si512(wg[g][k] + 64 * j);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        int32_t q;
        std::memcpy(&q, arow[t] + k * 34 + 2 + 4 * j, 4);
        const __m512i a = _mm512_set1_epi32(q);
#pragma GCC unroll 8
        for (int g = 0; g < G; ++g) sum[g][t] = _mm512_dpbusd_epi32(sum[g][t], w[g], a);
      }
    }
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      const __m512 dw = _mm512_load_ps(wg[g][k] + 512);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        float da;
        std::memcpy(&da, &prep[t][k / 4][4 + k % 4], 4);
        acc[g][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum[g][t]), _mm512_mul_ps(dw, _mm512_set1_ps(da)), acc[g][t]);
      }
    }
  }
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(out + t * out_stride + 16 * g, row_mask[g], acc[g][t]);
  }
}

template <int G, int T>
void packed_micro_tokens(size_t tokens, const uint8_t (*const* wg)[kGroupBytes], const uint8_t* const* arow,
                         const int32_t (*const* prep)[8], size_t count, bool accumulate, float* out,
                         size_t out_stride, const __mmask16* row_mask) {
  if constexpr (T > 1) {
    if (static_cast<size_t>(T) > tokens) {
      packed_micro_tokens<G, T - 1>(tokens, wg, arow, prep, count, accumulate, out, out_stride, row_mask);
      return;
    }
  }
  packed_micro<G, T>(wg, arow, prep, count, accumulate, out, out_stride, row_mask);
}

template <class P>
void dot_tile_packed(const uint8_t* weights, size_t weight_stride, const uint8_t* activations,
                     size_t activation_stride, size_t n, size_t rows, size_t tokens, float* out, size_t out_stride) {
  PackedScratch& s = packed_scratch;
  const size_t blocks = n / kBlock;
  for (size_t r0 = 0; r0 < rows; r0 += kPackedRows) {
    const size_t row_count = rows - r0 < kPackedRows ? rows - r0 : kPackedRows;
    const size_t groups = (row_count + 15) / 16;
    __mmask16 row_mask[kPackedRows / 16];
    for (size_t g = 0; g < groups; ++g) {
      const size_t valid = row_count - 16 * g < 16 ? row_count - 16 * g : 16;
      row_mask[g] = static_cast<__mmask16>((1u << valid) - 1);
    }
    for (size_t k0 = 0; k0 < blocks; k0 += kPackedBlocks) {
      const size_t count = blocks - k0 < kPackedBlocks ? blocks - k0 : kPackedBlocks;
      for (size_t g = 0; g < groups; ++g) {
        pack_group<P>(weights + (r0 + 16 * g) * weight_stride + k0 * P::kBytes, weight_stride,
                      row_count - 16 * g, count, s.weights[g]);
      }
      for (size_t t0 = 0; t0 < tokens; t0 += kPackedMaxTokens) {
        const size_t token_count = tokens - t0 < kPackedMaxTokens ? tokens - t0 : kPackedMaxTokens;
        const uint8_t* a = activations + t0 * activation_stride + k0 * 34;
        prepare_activations<P::kOffset>(a, activation_stride, token_count, count, s.act);
        for (size_t g = 0; g < groups; g += 2) {
          const uint8_t(*wg[2])[kGroupBytes] = {s.weights[g], s.weights[g + 1 < groups ? g + 1 : g]};
          for (size_t t = 0; t < token_count; t += kPackedTokens) {
            const size_t tc = token_count - t < kPackedTokens ? token_count - t : kPackedTokens;
            const uint8_t* arow[kPackedTokens];
            const int32_t(*prep[kPackedTokens])[8];
            for (size_t i = 0; i < tc; ++i) {
              arow[i] = a + (t + i) * activation_stride;
              prep[i] = s.act[t + i];
            }
            float* o = out + (t0 + t) * out_stride + r0 + 16 * g;
            if (g + 1 < groups) {
              packed_micro_tokens<2, kPackedTokens>(tc, wg, arow, prep, count, k0 > 0, o, out_stride,
                                                    row_mask + g);
            } else {
              packed_micro_tokens<1, kPackedTokens>(tc, wg, arow, prep, count, k0 > 0, o, out_stride,
                                                    row_mask + g);
            }
          }
        }
      }
    }
  }
}

constexpr size_t kTileRows = 4;
constexpr size_t kTileTokens = 4;

template <class W, class A>
void dot_tile_quant(const uint8_t* weights, size_t weight_stride, const uint8_t* activations,
                    size_t activation_stride, size_t n, size_t rows, size_t tokens, float* out, size_t out_stride) {
  if constexpr (kSame<A, ActQ8_0>) {
    if (tokens >= kPackedMinTokens) {
      if constexpr (kSame<W, WeightQ8_0>) {
        dot_tile_packed<PackQ8_0>(weights, weight_stride, activations, activation_stride, n, rows, tokens, out,
                                  out_stride);
        return;
      } else if constexpr (kSame<W, WeightQ4_0>) {
        dot_tile_packed<PackQ4_0>(weights, weight_stride, activations, activation_stride, n, rows, tokens, out,
                                  out_stride);
        return;
      } else if constexpr (kSame<W, WeightQ5_0>) {
        dot_tile_packed<PackQ5_0>(weights, weight_stride, activations, activation_stride, n, rows, tokens, out,
                                  out_stride);
        return;
      }
    }
  }
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
