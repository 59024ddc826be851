// Element-wise and row-wise operations of the transformer (scalar for now;
// the kernels issue adds SIMD versions behind the same functions).
#pragma once

#include <cstddef>

namespace frugal {

// out = x / sqrt(mean(x^2) + eps) * weight  (sum of squares in double, as ggml)
void rms_norm(const float* x, const float* weight, float* out, size_t n, float eps);
// In-place softmax over n values (max subtracted first).
void softmax(float* x, size_t n);
// gate = silu(gate) * up, element-wise.
void swiglu(float* gate, const float* up, size_t n);
// y += x
void add_in_place(float* y, const float* x, size_t n);

}  // namespace frugal
