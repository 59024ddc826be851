// Rows of hidden states made into one embedding vector.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

namespace frugal {

// The sum of the first `count` rows of `width` values (summed in double),
// scaled to length 1: a mean-pooled embedding, or with count 1 the first
// row's ([CLS] pooling). All zeros stay zeros.
inline std::vector<float> pooled_unit_vector(const float* rows, size_t count, size_t width) {
  std::vector<double> sum(width, 0.0);
  for (size_t t = 0; t < count; ++t) {
    for (size_t i = 0; i < width; ++i) sum[i] += rows[t * width + i];
  }
  double norm = 0;
  for (const double value : sum) norm += value * value;
  norm = std::sqrt(norm);
  std::vector<float> out(width);
  for (size_t i = 0; i < width; ++i) out[i] = norm > 0 ? static_cast<float>(sum[i] / norm) : 0.0f;
  return out;
}

}  // namespace frugal
