// AVX2 versions of the transformer's element-wise and row operations
// (see kernel_set.h for the rules of SIMD files).
#include <immintrin.h>

#include "tensor/kernel_set.h"
#include "tensor/kv_rows_kernels.h"
#include "tensor/simd_avx2.h"

namespace frugal {

namespace {

// e^x for 8 floats: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6
// polynomial, 2^n through the exponent bits. Relative error about 2e-7;
// inputs are clamped to the finite range of float.
inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.7f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i scale = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(scale));
}

void rms_norm_avx2(const float* x, const float* weight, float* out, size_t n, float eps) {
  __m256d sum0 = _mm256_setzero_pd(), sum1 = _mm256_setzero_pd();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 squares = _mm256_mul_ps(v, v);  // rounded to float first, as the scalar code
    sum0 = _mm256_add_pd(sum0, _mm256_cvtps_pd(_mm256_castps256_ps128(squares)));
    sum1 = _mm256_add_pd(sum1, _mm256_cvtps_pd(_mm256_extractf128_ps(squares, 1)));
  }
  const __m256d total = _mm256_add_pd(sum0, sum1);
  __m128d pair = _mm_add_pd(_mm256_castpd256_pd128(total), _mm256_extractf128_pd(total, 1));
  double sum = _mm_cvtsd_f64(_mm_add_sd(pair, _mm_unpackhi_pd(pair, pair)));
  for (; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float scale = 1.0f / __builtin_sqrtf(mean + eps);
  const __m256 s = _mm256_set1_ps(scale);
  i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), s), _mm256_loadu_ps(weight + i)));
  }
  for (; i < n; ++i) out[i] = (x[i] * scale) * weight[i];
}

void swiglu_avx2(float* gate, const float* up, size_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
    _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) gate[i] = gate[i] / (1.0f + __builtin_expf(-gate[i])) * up[i];
}

void softmax_avx2(float* x, size_t n) {
  __m256 max8 = _mm256_set1_ps(-__builtin_inff());
  size_t i = 0;
  for (; i + 8 <= n; i += 8) max8 = _mm256_max_ps(max8, _mm256_loadu_ps(x + i));
  float max = horizontal_max(max8);
  for (; i < n; ++i) max = x[i] > max ? x[i] : max;
  const __m256 m = _mm256_set1_ps(max);
  __m256 sum8 = _mm256_setzero_ps();
  i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
    _mm256_storeu_ps(x + i, e);
    sum8 = _mm256_add_ps(sum8, e);
  }
  float sum = horizontal_sum(sum8);
  for (; i < n; ++i) sum += (x[i] = __builtin_expf(x[i] - max));
  const __m256 inverse = _mm256_set1_ps(1.0f / sum);
  i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inverse));
  for (; i < n; ++i) x[i] *= 1.0f / sum;
}

FRUGAL_INLINE __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
FRUGAL_INLINE __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
FRUGAL_INLINE float to_float(float x) { return x; }
FRUGAL_INLINE float to_float(uint16_t x) { return _cvtsh_ss(x); }

// Over F32 rows, or F16 rows read as they are (an F16 cache's values).
template <class Row>
void weighted_sum_avx2(const float* weights, size_t count, const Row* rows, size_t row_stride, float* out,
                       size_t n) {
  size_t i = 0;
  // 32 columns at a time stay in registers across all rows.
  for (; i + 32 <= n; i += 32) {
    __m256 a0 = _mm256_loadu_ps(out + i), a1 = _mm256_loadu_ps(out + i + 8), a2 = _mm256_loadu_ps(out + i + 16),
           a3 = _mm256_loadu_ps(out + i + 24);
    for (size_t j = 0; j < count; ++j) {
      const __m256 w = _mm256_set1_ps(weights[j]);
      const Row* row = rows + j * row_stride + i;
      a0 = _mm256_fmadd_ps(w, load8(row), a0);
      a1 = _mm256_fmadd_ps(w, load8(row + 8), a1);
      a2 = _mm256_fmadd_ps(w, load8(row + 16), a2);
      a3 = _mm256_fmadd_ps(w, load8(row + 24), a3);
    }
    _mm256_storeu_ps(out + i, a0);
    _mm256_storeu_ps(out + i + 8, a1);
    _mm256_storeu_ps(out + i + 16, a2);
    _mm256_storeu_ps(out + i + 24, a3);
  }
  for (; i + 8 <= n; i += 8) {
    __m256 a = _mm256_loadu_ps(out + i);
    for (size_t j = 0; j < count; ++j) a = _mm256_fmadd_ps(_mm256_set1_ps(weights[j]), load8(rows + j * row_stride + i), a);
    _mm256_storeu_ps(out + i, a);
  }
  for (; i < n; ++i) {
    float a = out[i];
    for (size_t j = 0; j < count; ++j) a += weights[j] * to_float(rows[j * row_stride + i]);
    out[i] = a;
  }
}

template <class Row, void (*One)(const float*, size_t, const Row*, size_t, float*, size_t)>
void weighted_sums_by_one(const float* weights, size_t weight_stride, size_t outputs, size_t count, const Row* rows,
                          size_t row_stride, float* out, size_t out_stride, size_t n) {
  for (size_t o = 0; o < outputs; ++o) One(weights + o * weight_stride, count, rows, row_stride, out + o * out_stride, n);
}

template <class Key>
void key_scores_avx2(const Key* keys, size_t key_stride, size_t count, const float* queries, size_t query_stride,
                     size_t queries_count, size_t head_size, float* scores,
                     size_t score_stride) {
  for (size_t q = 0; q < queries_count; ++q) {
    const float* query = queries + q * query_stride;
    for (size_t j = 0; j < count; ++j) {
      const Key* key = keys + j * key_stride;
      __m256 acc = _mm256_setzero_ps();
      size_t i = 0;
      for (; i + 8 <= head_size; i += 8) acc = _mm256_fmadd_ps(load8(key + i), _mm256_loadu_ps(query + i), acc);
      __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
      h = _mm_add_ps(h, _mm_movehl_ps(h, h));
      h = _mm_add_ss(h, _mm_movehdup_ps(h));
      float sum = _mm_cvtss_f32(h);
      for (; i < head_size; ++i) sum += to_float(key[i]) * query[i];
      scores[q * score_stride + j] = sum;
    }
  }
}

// The AVX2 target of kv_rows_kernels.h: 8 floats.
struct KvRowsAvx2 {
  using Vec = __m256;
  static constexpr size_t width = 8;
  static Vec set1(float x) { return _mm256_set1_ps(x); }
  static Vec from_i8(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
  static void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
};

}  // namespace

void install_ops_avx2(KernelSet& set) {
  set.rms_norm = rms_norm_avx2;
  set.swiglu = swiglu_avx2;
  set.softmax = softmax_avx2;
  set.weighted_sum_f32 = weighted_sum_avx2<float>;
  set.weighted_sum_f16 = weighted_sum_avx2<uint16_t>;
  set.weighted_sums_f32 = weighted_sums_by_one<float, weighted_sum_avx2<float>>;
  set.weighted_sums_f16 = weighted_sums_by_one<uint16_t, weighted_sum_avx2<uint16_t>>;
  set.key_scores_f32 = key_scores_avx2<float>;
  set.key_scores_f16 = key_scores_avx2<uint16_t>;
  set.kv_rows_q8_0 = kv_rows_q8_0<KvRowsAvx2>;
  set.kv_rows_q4_0 = kv_rows_q4_0<KvRowsAvx2>;
}

}  // namespace frugal
