// AVX2 + FMA + F16C level (x86-64-v3). Compiled with -mavx2 -mfma -mf16c
// -mbmi2; see kernel_set.h for the rules such files follow.
#include <immintrin.h>

#include "tensor/kernel_set.h"
#include "tensor/simd_avx2.h"

namespace frugal {

namespace {

float dot_f32_avx2(const float* a, const float* b, size_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float sum = horizontal_sum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void axpy_f32_avx2(float alpha, const float* x, float* y, size_t n) {
  const __m256 a = _mm256_set1_ps(alpha);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(a, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace

void install_avx2_kernels(KernelSet& set) {
  set.dot_f32 = dot_f32_avx2;
  set.axpy_f32 = axpy_f32_avx2;
  install_legacy_avx2(set);
  install_kquant_avx2(set);
  install_packed_avx2(set);
  install_ops_avx2(set);
}

}  // namespace frugal
