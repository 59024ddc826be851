// avx2 kernels for the legacy formats (see kernel_set.h for the rules).
//
// Quantized dot tiles (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 weights against Q8_0/Q8_1
// activations), one 32-element block per ymm register:
//  - Q4/Q5 weights stay unsigned (nibbles, 5-bit values): maddubs multiplies
//    them with the signed activations into int16 pairs without saturation;
//    the offset (8, 16) comes off as maddubs(offset, activations), shared by
//    all rows; Q8_0 uses ggml's abs/sign trick instead;
//  - madd with ones gives 8 int32 sums, converted to float and scaled by the
//    product of the block scales (fp16 via F16C) with FMA;
//  - Q4_1/Q5_1 add m * s per block (s = d_a * sum(q_a) of the Q8_1 block).
// A micro-tile is 4 weight rows x 1 or 2 tokens; remainder rows and tokens
// repeat the last one (computed, not stored).
//
// Also the Q8_0/Q8_1 activation quantizers, bit-identical to the scalar ones.
// F32/F16/BF16 dot tiles live in dot_plain_avx2.cpp.
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

constexpr size_t kBlock = 32;

FRUGAL_INLINE __m256 half_broadcast(const uint8_t* p) { return _mm256_set1_ps(load_f16(p)); }

// The nibbles of 16 bytes in element order: [low nibbles, high nibbles].
FRUGAL_INLINE __m256i nibbles(const uint8_t* p) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// 16 in byte j where bit j of the 32-bit qh is set (ggml's bytes_from_bits_32).
FRUGAL_INLINE __m256i high_bits(const uint8_t* qh) {
  const __m256i shuffle = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202,
                                             0x0303030303030303);
  __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(load_u32(qh))), shuffle);
  bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
  bytes = _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
  return _mm256_and_si256(bytes, _mm256_set1_epi8(16));
}

// Weight formats: quants() gives the bytes (unsigned u with value
// d * (u - kOffset) (+ m), or signed for kSigned), scale() d, min() m.
struct WeightQ8_0 {
  static constexpr size_t kBytes = 34;
  static constexpr int kOffset = 0;
  static constexpr bool kSigned = true;
  static constexpr bool kMin = false;
  static FRUGAL_INLINE __m256i quants(const uint8_t* b) { return load_256(b + 2); }
  static FRUGAL_INLINE __m256 scale(const uint8_t* b) { return half_broadcast(b); }
  static FRUGAL_INLINE __m256 min(const uint8_t*) { return _mm256_setzero_ps(); }
};

struct WeightQ4_0 {
  static constexpr size_t kBytes = 18;
  static constexpr int kOffset = 8;
  static constexpr bool kSigned = false;
  static constexpr bool kMin = false;
  static FRUGAL_INLINE __m256i quants(const uint8_t* b) { return nibbles(b + 2); }
  static FRUGAL_INLINE __m256 scale(const uint8_t* b) { return half_broadcast(b); }
  static FRUGAL_INLINE __m256 min(const uint8_t*) { return _mm256_setzero_ps(); }
};

struct WeightQ4_1 {
  static constexpr size_t kBytes = 20;
  static constexpr int kOffset = 0;
  static constexpr bool kSigned = false;
  static constexpr bool kMin = true;
  static FRUGAL_INLINE __m256i quants(const uint8_t* b) { return nibbles(b + 4); }
  static FRUGAL_INLINE __m256 scale(const uint8_t* b) { return half_broadcast(b); }
  static FRUGAL_INLINE __m256 min(const uint8_t* b) { return half_broadcast(b + 2); }
};

struct WeightQ5_0 {
  static constexpr size_t kBytes = 22;
  static constexpr int kOffset = 16;
  static constexpr bool kSigned = false;
  static constexpr bool kMin = false;
  static FRUGAL_INLINE __m256i quants(const uint8_t* b) { return _mm256_or_si256(nibbles(b + 6), high_bits(b + 2)); }
  static FRUGAL_INLINE __m256 scale(const uint8_t* b) { return half_broadcast(b); }
  static FRUGAL_INLINE __m256 min(const uint8_t*) { return _mm256_setzero_ps(); }
};

struct WeightQ5_1 {
  static constexpr size_t kBytes = 24;
  static constexpr int kOffset = 0;
  static constexpr bool kSigned = false;
  static constexpr bool kMin = true;
  static FRUGAL_INLINE __m256i quants(const uint8_t* b) { return _mm256_or_si256(nibbles(b + 8), high_bits(b + 4)); }
  static FRUGAL_INLINE __m256 scale(const uint8_t* b) { return half_broadcast(b); }
  static FRUGAL_INLINE __m256 min(const uint8_t* b) { return half_broadcast(b + 2); }
};

struct ActQ8_0 {
  static constexpr size_t kBytes = 34;
  static FRUGAL_INLINE __m256i quants(const uint8_t* b) { return load_256(b + 2); }
  static FRUGAL_INLINE __m256 scale(const uint8_t* b) { return half_broadcast(b); }
  static FRUGAL_INLINE __m256 sum(const uint8_t*) { return _mm256_setzero_ps(); }
};

struct ActQ8_1 {
  static constexpr size_t kBytes = 36;
  static FRUGAL_INLINE __m256i quants(const uint8_t* b) { return load_256(b + 4); }
  static FRUGAL_INLINE __m256 scale(const uint8_t* b) { return half_broadcast(b); }
  static FRUGAL_INLINE __m256 sum(const uint8_t* b) { return half_broadcast(b + 2); }
};

// Block b of an R x T micro-tile.
template <class W, class A, int R, int T>
FRUGAL_INLINE void tile_step(const uint8_t* const* wrow, const uint8_t* const* arow, size_t b, __m256 (&acc)[R][T]) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i wq[R];
  __m256 wd[R];
  __m256 wm[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const uint8_t* p = wrow[r] + b * W::kBytes;
    wq[r] = W::quants(p);
    wd[r] = W::scale(p);
    if constexpr (W::kMin) wm[r] = W::min(p);
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
    const uint8_t* p = arow[t] + b * A::kBytes;
    const __m256i aq = A::quants(p);
    const __m256 ad = A::scale(p);
    __m256i offset = _mm256_setzero_si256();
    if constexpr (W::kOffset != 0) offset = _mm256_maddubs_epi16(_mm256_set1_epi8(W::kOffset), aq);
    __m256 as = _mm256_setzero_ps();
    // 8 lanes each add m * s; the 1/8 is exact.
    if constexpr (W::kMin) as = _mm256_mul_ps(A::sum(p), _mm256_set1_ps(0.125f));
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      __m256i pairs;
      if constexpr (W::kSigned) {
        pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(wq[r], wq[r]), _mm256_sign_epi8(aq, wq[r]));
      } else {
        pairs = _mm256_maddubs_epi16(wq[r], aq);
        if constexpr (W::kOffset != 0) pairs = _mm256_sub_epi16(pairs, offset);
      }
      const __m256i sums = _mm256_madd_epi16(pairs, ones);
      acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_mul_ps(wd[r], ad), acc[r][t]);
      if constexpr (W::kMin) acc[r][t] = _mm256_fmadd_ps(wm[r], as, acc[r][t]);
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
  __m256 acc[R][T];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
  }
  if constexpr (T == 1) {
    // Decode streams the weights from memory: fetch the same place of rows
    // kDecodePrefetchBytes ahead, as the hardware prefetcher starts late on
    // short rows.
    const size_t group = R * weight_stride;
    const size_t ahead = (kDecodePrefetchBytes + group - 1) / group * group;
    for (size_t b = 0; b < blocks; ++b) {
      if (b % 2 == 0) {
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          const char* p = reinterpret_cast<const char*>(wrow[r] + b * W::kBytes + ahead);
          _mm_prefetch(p, _MM_HINT_T0);
          if constexpr (2 * W::kBytes > 64) _mm_prefetch(p + 64, _MM_HINT_T0);
        }
      }
      tile_step<W, A, R, T>(wrow, arow, b, acc);
    }
  } else {
    for (size_t b = 0; b < blocks; ++b) tile_step<W, A, R, T>(wrow, arow, b, acc);
  }
  for (size_t t = 0; t < tokens; ++t) {
    for (size_t r = 0; r < rows; ++r) out[t * out_stride + r] = horizontal_sum(acc[r][t]);
  }
}

constexpr size_t kTileRows = 4;
constexpr size_t kTileTokens = 2;

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
      } else {
        micro_tile<W, A, 4, 2>(w, weight_stride, a, activation_stride, blocks, row_count, 2, o, out_stride);
      }
    }
  }
}

// ---------------------------------------------------------------- quantizers

// One block of the symmetric 8-bit quantizer, as quantize_8bit_block in
// quant_legacy.cpp: scale 127 / amax, round half to even, NaN and values out
// of [-127, 127] become 0. Returns d = amax / 127 and the sum of the quants.
FRUGAL_INLINE float quantize_8bit_block(const float* x, int8_t* qs, int* sum) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 v[4];
  __m256 amax = _mm256_setzero_ps();
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_loadu_ps(x + 8 * i);
    // max_ps returns its second operand when either is NaN: NaNs are skipped
    // as std::max(amax, NaN) skips them.
    amax = _mm256_max_ps(_mm256_andnot_ps(sign, v[i]), amax);
  }
  const float max_abs = horizontal_max(amax);
  const float d = max_abs / 127;
  const float id = max_abs != 0.0f ? 127.0f / max_abs : 0.0f;
  const __m256 scale = _mm256_set1_ps(id);
  const __m256i low = _mm256_set1_epi32(-128);
  const __m256i high = _mm256_set1_epi32(128);
  __m256i q[4];
  for (int i = 0; i < 4; ++i) {
    // Default MXCSR rounding is to nearest even, as std::nearbyint; NaN and
    // out-of-range give INT_MIN, which the range check maps to 0.
    const __m256i r = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], scale));
    const __m256i ok = _mm256_and_si256(_mm256_cmpgt_epi32(r, low), _mm256_cmpgt_epi32(high, r));
    q[i] = _mm256_and_si256(r, ok);
  }
  if (sum) {
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    *sum = _mm_cvtsi128_si32(s4);
  }
  const __m256i q01 = _mm256_packs_epi32(q[0], q[1]);
  const __m256i q23 = _mm256_packs_epi32(q[2], q[3]);
  __m256i bytes = _mm256_packs_epi16(q01, q23);
  bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), bytes);
  return d;
}

void quantize_q8_0_avx2(const float* x, void* out, size_t n) {
  uint8_t* o = static_cast<uint8_t*>(out);
  for (size_t i = 0; i < n / kBlock; ++i, o += 34) {
    const float d = quantize_8bit_block(x + i * kBlock, reinterpret_cast<int8_t*>(o + 2), nullptr);
    store_u16(o, _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
}

void quantize_q8_1_avx2(const float* x, void* out, size_t n) {
  uint8_t* o = static_cast<uint8_t*>(out);
  for (size_t i = 0; i < n / kBlock; ++i, o += 36) {
    int sum = 0;
    const float d = quantize_8bit_block(x + i * kBlock, reinterpret_cast<int8_t*>(o + 4), &sum);
    store_u16(o, _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    store_u16(o + 2, _cvtss_sh(static_cast<float>(sum) * d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
}

}  // namespace

void install_legacy_avx2(KernelSet& set) {
  set.dot_tile[type_slot(TensorType::Q8_0)] = dot_tile_quant<WeightQ8_0, ActQ8_0>;
  set.dot_tile[type_slot(TensorType::Q4_0)] = dot_tile_quant<WeightQ4_0, ActQ8_0>;
  set.dot_tile[type_slot(TensorType::Q4_1)] = dot_tile_quant<WeightQ4_1, ActQ8_1>;
  set.dot_tile[type_slot(TensorType::Q5_0)] = dot_tile_quant<WeightQ5_0, ActQ8_0>;
  set.dot_tile[type_slot(TensorType::Q5_1)] = dot_tile_quant<WeightQ5_1, ActQ8_1>;
  set.quantize_activation[type_slot(TensorType::Q8_0)] = quantize_q8_0_avx2;
  set.quantize_activation[type_slot(TensorType::Q8_1)] = quantize_q8_1_avx2;
  install_plain_avx2(set);
}

}  // namespace frugal
