// AVX-512 versions of the transformer's element-wise and row operations
// (see kernel_set.h for the rules of SIMD files).
// GCC 12's AVX-512 headers trip -Wuninitialized inside their own intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include "tensor/kernel_set.h"
#include "tensor/kv_rows_kernels.h"
#include "tensor/simd_avx512.h"

namespace frugal {

namespace {

// e^x for 16 floats, as exp8 in ops_avx2.cpp, with the exponent applied by
// scalef (which also handles the range ends).
inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.7f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

void swiglu_avx512(float* gate, const float* up, size_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
    _mm512_storeu_ps(gate + i, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_loadu_ps(up + i)));
  }
  for (; i < n; ++i) gate[i] = gate[i] / (1.0f + __builtin_expf(-gate[i])) * up[i];
}

void softmax_avx512(float* x, size_t n) {
  __m512 max16 = _mm512_set1_ps(-__builtin_inff());
  size_t i = 0;
  for (; i + 16 <= n; i += 16) max16 = _mm512_max_ps(max16, _mm512_loadu_ps(x + i));
  float max = _mm512_reduce_max_ps(max16);
  for (; i < n; ++i) max = x[i] > max ? x[i] : max;
  const __m512 m = _mm512_set1_ps(max);
  __m512 sum16 = _mm512_setzero_ps();
  i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
    _mm512_storeu_ps(x + i, e);
    sum16 = _mm512_add_ps(sum16, e);
  }
  float sum = _mm512_reduce_add_ps(sum16);
  for (; i < n; ++i) sum += (x[i] = __builtin_expf(x[i] - max));
  const __m512 inverse = _mm512_set1_ps(1.0f / sum);
  i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inverse));
  for (; i < n; ++i) x[i] *= 1.0f / sum;
}

FRUGAL_INLINE __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
FRUGAL_INLINE __m512 load16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
FRUGAL_INLINE __m512 load16(__mmask16 mask, const float* p) { return _mm512_maskz_loadu_ps(mask, p); }
FRUGAL_INLINE __m512 load16(__mmask16 mask, const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p));
}

// Over F32 rows, or F16 rows read as they are (an F16 cache's values).
template <class Row>
void weighted_sum_avx512(const float* weights, size_t count, const Row* rows, size_t row_stride, float* out,
                         size_t n) {
  size_t i = 0;
  // 64 columns (a whole head of most models) stay in registers across rows.
  for (; i + 64 <= n; i += 64) {
    __m512 a0 = _mm512_loadu_ps(out + i), a1 = _mm512_loadu_ps(out + i + 16), a2 = _mm512_loadu_ps(out + i + 32),
           a3 = _mm512_loadu_ps(out + i + 48);
    for (size_t j = 0; j < count; ++j) {
      const __m512 w = _mm512_set1_ps(weights[j]);
      const Row* row = rows + j * row_stride + i;
      a0 = _mm512_fmadd_ps(w, load16(row), a0);
      a1 = _mm512_fmadd_ps(w, load16(row + 16), a1);
      a2 = _mm512_fmadd_ps(w, load16(row + 32), a2);
      a3 = _mm512_fmadd_ps(w, load16(row + 48), a3);
    }
    _mm512_storeu_ps(out + i, a0);
    _mm512_storeu_ps(out + i + 16, a1);
    _mm512_storeu_ps(out + i + 32, a2);
    _mm512_storeu_ps(out + i + 48, a3);
  }
  for (; i < n; i += 16) {
    const __mmask16 mask = n - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - i)) - 1);
    __m512 a = _mm512_maskz_loadu_ps(mask, out + i);
    for (size_t j = 0; j < count; ++j) {
      a = _mm512_fmadd_ps(_mm512_set1_ps(weights[j]), load16(mask, rows + j * row_stride + i), a);
    }
    _mm512_mask_storeu_ps(out + i, mask, a);
  }
}

// Up to 4 outputs x 16 C columns (C = 4 or 2) in registers while the rows
// pass once.
template <class Row, int O, int C>
FRUGAL_INLINE void weighted_sums_block(const float* weights, size_t weight_stride, size_t count, const Row* rows,
                                       size_t row_stride, float* out, size_t out_stride) {
  __m512 acc[O][C];
#pragma GCC unroll 4
  for (int o = 0; o < O; ++o) {
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) acc[o][c] = _mm512_loadu_ps(out + o * out_stride + 16 * c);
  }
  for (size_t j = 0; j < count; ++j) {
    const Row* row = rows + j * row_stride;
    __m512 v[C];
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) v[c] = load16(row + 16 * c);
#pragma GCC unroll 4
    for (int o = 0; o < O; ++o) {
      const __m512 w = _mm512_set1_ps(weights[o * weight_stride + j]);
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) acc[o][c] = _mm512_fmadd_ps(w, v[c], acc[o][c]);
    }
  }
#pragma GCC unroll 4
  for (int o = 0; o < O; ++o) {
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) _mm512_storeu_ps(out + o * out_stride + 16 * c, acc[o][c]);
  }
}

// All outputs over columns [i, i + 16 C), four at a time.
template <class Row, int C>
void weighted_sums_columns(const float* weights, size_t weight_stride, size_t outputs, size_t count, const Row* rows,
                           size_t row_stride, float* out, size_t out_stride) {
  size_t o = 0;
  for (; o + 4 <= outputs; o += 4) {
    weighted_sums_block<Row, 4, C>(weights + o * weight_stride, weight_stride, count, rows, row_stride,
                                   out + o * out_stride, out_stride);
  }
  const float* w = weights + o * weight_stride;
  float* at = out + o * out_stride;
  switch (outputs - o) {
    case 3: weighted_sums_block<Row, 3, C>(w, weight_stride, count, rows, row_stride, at, out_stride); break;
    case 2: weighted_sums_block<Row, 2, C>(w, weight_stride, count, rows, row_stride, at, out_stride); break;
    case 1: weighted_sums_block<Row, 1, C>(w, weight_stride, count, rows, row_stride, at, out_stride); break;
    default: break;
  }
}

// 64 columns at a time, then 32 (heads of 32, 96...), then one output at a
// time for the rest: each output's additions in the same order throughout.
template <class Row, void (*One)(const float*, size_t, const Row*, size_t, float*, size_t)>
void weighted_sums_avx512(const float* weights, size_t weight_stride, size_t outputs, size_t count, const Row* rows,
                          size_t row_stride, float* out, size_t out_stride, size_t n) {
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    weighted_sums_columns<Row, 4>(weights, weight_stride, outputs, count, rows + i, row_stride, out + i, out_stride);
  }
  if (i + 32 <= n) {
    weighted_sums_columns<Row, 2>(weights, weight_stride, outputs, count, rows + i, row_stride, out + i, out_stride);
    i += 32;
  }
  if (i < n) {
    for (size_t o = 0; o < outputs; ++o) {
      One(weights + o * weight_stride, count, rows + i, row_stride, out + o * out_stride + i, n - i);
    }
  }
}

// Lane k of the result = the sum of the 16 lanes of v[k]: a transpose and
// add in four rounds (45 operations for 16 sums, not 16 reductions).
FRUGAL_INLINE __m512 sums_of_16(const __m512 (&v)[16]) {
  __m512 c[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    // Per 128-bit lane: [a0+a2, b0+b2, a1+a3, b1+b3].
    c[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
  }
  __m512 e[4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    // Per 128-bit lane: the lane's sums of four vectors.
    e[i] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0x44), _mm512_shuffle_ps(c[2 * i], c[2 * i + 1], 0xEE));
  }
  const __m512 g0 = _mm512_add_ps(_mm512_shuffle_f32x4(e[0], e[1], 0x44), _mm512_shuffle_f32x4(e[0], e[1], 0xEE));
  const __m512 g1 = _mm512_add_ps(_mm512_shuffle_f32x4(e[2], e[3], 0x44), _mm512_shuffle_f32x4(e[2], e[3], 0xEE));
  return _mm512_add_ps(_mm512_shuffle_f32x4(g0, g1, 0x88), _mm512_shuffle_f32x4(g0, g1, 0xDD));
}

// 16 keys at a time, one accumulator per key, summed by sums_of_16; head
// sizes that are not a multiple of 16 take masked loads for the rest.
template <class Key>
void key_scores_avx512(const Key* keys, size_t key_stride, size_t count, const float* queries, size_t query_stride,
                       size_t queries_count, size_t head_size, float* scores,
                       size_t score_stride) {
  const size_t whole = head_size / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (head_size - whole)) - 1);
  for (size_t j0 = 0; j0 < count; j0 += 16) {
    const size_t keys_here = count - j0 < 16 ? count - j0 : 16;
    const Key* key[16];
    for (size_t k = 0; k < 16; ++k) key[k] = keys + (j0 + (k < keys_here ? k : keys_here - 1)) * key_stride;
    for (size_t q = 0; q < queries_count; ++q) {
      const float* query = queries + q * query_stride;
      __m512 acc[16];
#pragma GCC unroll 16
      for (int k = 0; k < 16; ++k) acc[k] = _mm512_setzero_ps();
      for (size_t i = 0; i < whole; i += 16) {
        const __m512 x = _mm512_loadu_ps(query + i);
#pragma GCC unroll 16
        for (int k = 0; k < 16; ++k) acc[k] = _mm512_fmadd_ps(load16(key[k] + i), x, acc[k]);
      }
      if (tail) {
        const __m512 x = _mm512_maskz_loadu_ps(tail, query + whole);
#pragma GCC unroll 16
        for (int k = 0; k < 16; ++k) {
          __m512 y;
          if constexpr (sizeof(Key) == 2) {
            y = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(tail, key[k] + whole));
          } else {
            y = _mm512_maskz_loadu_ps(tail, key[k] + whole);
          }
          acc[k] = _mm512_fmadd_ps(y, x, acc[k]);
        }
      }
      const __mmask16 store = static_cast<__mmask16>((1u << keys_here) - 1);
      _mm512_mask_storeu_ps(scores + q * score_stride + j0, store, sums_of_16(acc));
    }
  }
}

// The AVX-512 target of kv_rows_kernels.h: 16 floats.
struct KvRowsAvx512 {
  using Vec = __m512;
  static constexpr size_t width = 16;
  static Vec set1(float x) { return _mm512_set1_ps(x); }
  static Vec from_i8(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
  static void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
};

}  // namespace

void install_ops_avx512(KernelSet& set) {
  set.swiglu = swiglu_avx512;
  set.softmax = softmax_avx512;
  set.weighted_sum_f32 = weighted_sum_avx512<float>;
  set.weighted_sum_f16 = weighted_sum_avx512<uint16_t>;
  set.weighted_sums_f32 = weighted_sums_avx512<float, weighted_sum_avx512<float>>;
  set.weighted_sums_f16 = weighted_sums_avx512<uint16_t, weighted_sum_avx512<uint16_t>>;
  set.key_scores_f32 = key_scores_avx512<float>;
  set.key_scores_f16 = key_scores_avx512<uint16_t>;
  set.kv_rows_q8_0 = kv_rows_q8_0<KvRowsAvx512>;
  set.kv_rows_q4_0 = kv_rows_q4_0<KvRowsAvx512>;
}

}  // namespace frugal
