// Small dense linear algebra for merging heads: the orthogonal matrix that
// best maps one set of vectors onto another.
#pragma once

#include <cstddef>
#include <vector>

namespace frugal::retrofit {

// Row-major n x n. R minimizing ||A R - B|| over orthogonal R, given
// cross = A^T B (n x n): R = U V^T for cross = U S V^T (one-sided Jacobi
// SVD in double).
std::vector<double> orthogonal_procrustes(const std::vector<double>& cross, size_t n);

}  // namespace frugal::retrofit
