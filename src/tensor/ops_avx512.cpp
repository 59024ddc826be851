// AVX-512 versions of the transformer's element-wise and row operations
// (see kernel_set.h for the rules of SIMD files).
// GCC 12's AVX-512 headers trip -Wuninitialized inside their own intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>


#include "tensor/kernel_set.h"
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

void weighted_sum_f32_avx512(const float* weights, size_t count, const float* rows, size_t row_stride, float* out,
                             size_t n) {
  size_t i = 0;
  // 64 columns (a whole head of most models) stay in registers across rows.
  for (; i + 64 <= n; i += 64) {
    __m512 a0 = _mm512_loadu_ps(out + i), a1 = _mm512_loadu_ps(out + i + 16), a2 = _mm512_loadu_ps(out + i + 32),
           a3 = _mm512_loadu_ps(out + i + 48);
    for (size_t j = 0; j < count; ++j) {
      const __m512 w = _mm512_set1_ps(weights[j]);
      const float* row = rows + j * row_stride + i;
      a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(row), a0);
      a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(row + 16), a1);
      a2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(row + 32), a2);
      a3 = _mm512_fmadd_ps(w, _mm512_loadu_ps(row + 48), a3);
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
      a = _mm512_fmadd_ps(_mm512_set1_ps(weights[j]), _mm512_maskz_loadu_ps(mask, rows + j * row_stride + i), a);
    }
    _mm512_mask_storeu_ps(out + i, mask, a);
  }
}

}  // namespace

void install_ops_avx512(KernelSet& set) {
  set.swiglu = swiglu_avx512;
  set.softmax = softmax_avx512;
  set.weighted_sum_f32 = weighted_sum_f32_avx512;
}

}  // namespace frugal
