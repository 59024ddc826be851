#include "retrofit/procrustes.h"

#include <algorithm>
#include <cmath>

namespace frugal::retrofit {

std::vector<double> orthogonal_procrustes(const std::vector<double>& cross, size_t n) {
  // One-sided Jacobi: rotate column pairs of A = cross until they are
  // orthogonal; then A = U S and the rotations made V.
  std::vector<double> a = cross, v(n * n, 0.0);
  for (size_t i = 0; i < n; ++i) v[i * n + i] = 1.0;
  for (int sweep = 0; sweep < 60; ++sweep) {
    double off = 0;
    for (size_t p = 0; p + 1 < n; ++p) {
      for (size_t q = p + 1; q < n; ++q) {
        double alpha = 0, beta = 0, gamma = 0;
        for (size_t i = 0; i < n; ++i) {
          alpha += a[i * n + p] * a[i * n + p];
          beta += a[i * n + q] * a[i * n + q];
          gamma += a[i * n + p] * a[i * n + q];
        }
        if (gamma == 0 || std::fabs(gamma) <= 1e-15 * std::sqrt(alpha * beta)) continue;
        off = std::max(off, std::fabs(gamma) / std::sqrt(alpha * beta));
        const double zeta = (beta - alpha) / (2 * gamma);
        const double t = (zeta >= 0 ? 1.0 : -1.0) / (std::fabs(zeta) + std::sqrt(1 + zeta * zeta));
        const double c = 1 / std::sqrt(1 + t * t), s = c * t;
        for (size_t i = 0; i < n; ++i) {
          const double ap = a[i * n + p], aq = a[i * n + q];
          a[i * n + p] = c * ap - s * aq;
          a[i * n + q] = s * ap + c * aq;
          const double vp = v[i * n + p], vq = v[i * n + q];
          v[i * n + p] = c * vp - s * vq;
          v[i * n + q] = s * vp + c * vq;
        }
      }
    }
    if (off < 1e-12) break;
  }
  // U = A with unit columns. A singular direction (fewer samples than
  // dimensions, a dead channel) leaves a column of zeros: it is completed to
  // an orthonormal basis, so R stays a rotation and folding it elsewhere
  // stays exact.
  double largest = 0;
  for (size_t j = 0; j < n; ++j) {
    double norm = 0;
    for (size_t i = 0; i < n; ++i) norm += a[i * n + j] * a[i * n + j];
    largest = std::max(largest, std::sqrt(norm));
  }
  std::vector<bool> done(n, false);
  for (size_t j = 0; j < n; ++j) {
    double norm = 0;
    for (size_t i = 0; i < n; ++i) norm += a[i * n + j] * a[i * n + j];
    norm = std::sqrt(norm);
    if (norm > 1e-12 * largest && norm > 0) {
      for (size_t i = 0; i < n; ++i) a[i * n + j] /= norm;
      done[j] = true;
    }
  }
  for (size_t j = 0; j < n; ++j) {
    if (done[j]) continue;
    for (size_t e = 0; e < n && !done[j]; ++e) {  // unit vectors, less their parts along the finished columns
      std::vector<double> c(n, 0.0);
      c[e] = 1;
      for (size_t k = 0; k < n; ++k) {
        if (!done[k]) continue;
        double dot = 0;
        for (size_t i = 0; i < n; ++i) dot += c[i] * a[i * n + k];
        for (size_t i = 0; i < n; ++i) c[i] -= dot * a[i * n + k];
      }
      double norm = 0;
      for (double x : c) norm += x * x;
      norm = std::sqrt(norm);
      if (norm < 1e-6) continue;
      for (size_t i = 0; i < n; ++i) a[i * n + j] = c[i] / norm;
      done[j] = true;
    }
  }
  std::vector<double> r(n * n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) {
      double sum = 0;
      for (size_t k = 0; k < n; ++k) sum += a[i * n + k] * v[j * n + k];
      r[i * n + j] = sum;
    }
  }
  return r;
}

}  // namespace frugal::retrofit
