// Backward-pass pieces of the LoRA trainer (backward_ops.h).
#include "train/backward_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/ops.h"
#include "tensor/thread_pool.h"

namespace frugal {

void add_transposed_product(const WeightMatrix& w, const float* dy, size_t n, float* dx, ThreadPool& pool) {
  const auto rows = static_cast<size_t>(w.rows), cols = static_cast<size_t>(w.cols);
  // A block of W's rows, transposed, is a small F32 matrix [cols x block]
  // whose product with dy's matching columns is this block's share of dx.
  constexpr size_t kBlock = 256;
  std::vector<float> transposed(cols * kBlock), dy_block(n * kBlock), part(n * cols);
  for (size_t first = 0; first < rows; first += kBlock) {
    const size_t block = std::min(kBlock, rows - first);
    pool.parallel_for(block, [&](size_t begin, size_t end) {
      std::vector<float> row(cols);
      for (size_t r = begin; r < end; ++r) {
        dequantize_matrix_row(w, static_cast<int64_t>(first + r), row.data());
        for (size_t c = 0; c < cols; ++c) transposed[c * block + r] = row[c];
      }
    });
    for (size_t t = 0; t < n; ++t) std::copy_n(dy + t * rows + first, block, dy_block.data() + t * block);
    const WeightMatrix block_matrix{TensorType::F32, reinterpret_cast<const uint8_t*>(transposed.data()),
                                    static_cast<int64_t>(cols), static_cast<int64_t>(block), block * sizeof(float)};
    matmul(block_matrix, dy_block.data(), n, part.data(), pool);
    add_in_place(dx, part.data(), n * cols);
  }
}

void rms_norm_backward(const float* x, const float* weight, const float* dy, size_t n, size_t width, float eps,
                       float* dx) {
  for (size_t t = 0; t < n; ++t) {
    const float* xr = x + t * width;
    const float* dyr = dy + t * width;
    double squares = 0, dot = 0;
    for (size_t i = 0; i < width; ++i) {
      squares += static_cast<double>(xr[i]) * xr[i];
      dot += static_cast<double>(dyr[i]) * weight[i] * xr[i];
    }
    const double inverse = 1.0 / std::sqrt(squares / static_cast<double>(width) + eps);
    const double correction = dot * inverse * inverse * inverse / static_cast<double>(width);
    float* dxr = dx + t * width;
    for (size_t i = 0; i < width; ++i) {
      dxr[i] += static_cast<float>(dyr[i] * weight[i] * inverse - xr[i] * correction);
    }
  }
}

void swiglu_backward(const float* gate, const float* up, const float* dh, size_t count, float* d_gate, float* d_up) {
  for (size_t i = 0; i < count; ++i) {
    const float g = gate[i];
    const float sigmoid = 1.0f / (1.0f + std::exp(-g));
    const float silu = g * sigmoid;
    d_up[i] = dh[i] * silu;
    d_gate[i] = dh[i] * up[i] * sigmoid * (1.0f + g * (1.0f - sigmoid));
  }
}

void lora_forward(const TrainableMatrix& m, float factor, const float* x, size_t n, float* low, float* out) {
  const auto rank = static_cast<size_t>(m.rank), rows = static_cast<size_t>(m.rows), cols = static_cast<size_t>(m.cols);
  for (size_t t = 0; t < n; ++t) {
    const float* xt = x + t * cols;
    float* lt = low + t * rank;
    for (size_t k = 0; k < rank; ++k) {
      const float* a = m.a.data() + k * cols;
      float sum = 0;
      for (size_t c = 0; c < cols; ++c) sum += a[c] * xt[c];
      lt[k] = sum;
    }
    float* ot = out + t * rows;
    for (size_t r = 0; r < rows; ++r) {
      const float* b = m.b.data() + r * rank;
      float sum = 0;
      for (size_t k = 0; k < rank; ++k) sum += b[k] * lt[k];
      ot[r] += factor * sum;
    }
  }
}

void lora_backward(TrainableMatrix& m, float factor, const float* x, const float* low, const float* dy, size_t n,
                   float* dx) {
  const auto rank = static_cast<size_t>(m.rank), rows = static_cast<size_t>(m.rows), cols = static_cast<size_t>(m.cols);
  std::vector<float> d_low(rank);
  for (size_t t = 0; t < n; ++t) {
    const float* dyt = dy + t * rows;
    const float* lt = low + t * rank;
    // d(low) = factor * dy B; dB += factor * dy low^T.
    std::fill(d_low.begin(), d_low.end(), 0.0f);
    for (size_t r = 0; r < rows; ++r) {
      const float g = factor * dyt[r];
      if (g == 0.0f) continue;
      const float* b = m.b.data() + r * rank;
      float* gb = m.grad_b.data() + r * rank;
      for (size_t k = 0; k < rank; ++k) {
        d_low[k] += g * b[k];
        gb[k] += g * lt[k];
      }
    }
    // dA += d(low) x^T; dx += d(low) A.
    const float* xt = x + t * cols;
    float* dxt = dx + t * cols;
    for (size_t k = 0; k < rank; ++k) {
      const float g = d_low[k];
      if (g == 0.0f) continue;
      const float* a = m.a.data() + k * cols;
      float* ga = m.grad_a.data() + k * cols;
      for (size_t c = 0; c < cols; ++c) {
        ga[c] += g * xt[c];
        dxt[c] += g * a[c];
      }
    }
  }
}

}  // namespace frugal
