// Backward-pass pieces of the LoRA trainer (backward_ops.h).
#include "train/backward_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/kernel_set.h"
#include "tensor/ops.h"
#include "tensor/thread_pool.h"

namespace frugal {

WeightMatrix f32_matrix(const float* values, size_t rows, size_t cols) {
  return {TensorType::F32, reinterpret_cast<const uint8_t*>(values), static_cast<int64_t>(rows),
          static_cast<int64_t>(cols), cols * sizeof(float)};
}

void transpose(const float* in, size_t rows, size_t cols, std::vector<float>& out) {
  out.resize(rows * cols);
  // In 16 x 16 tiles, so that both sides stay in cache lines already read
  // (the attention gradients transpose tokens x tokens matrices).
  constexpr size_t kTile = 16;
  for (size_t r0 = 0; r0 < rows; r0 += kTile) {
    const size_t r1 = std::min(rows, r0 + kTile);
    for (size_t c0 = 0; c0 < cols; c0 += kTile) {
      const size_t c1 = std::min(cols, c0 + kTile);
      for (size_t r = r0; r < r1; ++r) {
        for (size_t c = c0; c < c1; ++c) out[c * rows + r] = in[r * cols + c];
      }
    }
  }
}

namespace {

// Rows [first, first + count) of W as F32, transposed: out[c * count + r].
void transposed_rows(const WeightMatrix& w, size_t first, size_t count, float* out, ThreadPool& pool) {
  const auto cols = static_cast<size_t>(w.cols);
  pool.parallel_for(count, [&](size_t begin, size_t end) {
    std::vector<float> row(cols);
    for (size_t r = begin; r < end; ++r) {
      dequantize_matrix_row(w, static_cast<int64_t>(first + r), row.data());
      for (size_t c = 0; c < cols; ++c) out[c * count + r] = row[c];
    }
  });
}

}  // namespace

void add_transposed_product(const WeightMatrix& w, const float* dy, size_t n, float* dx, ThreadPool& pool) {
  const auto rows = static_cast<size_t>(w.rows), cols = static_cast<size_t>(w.cols);
  // A block of W's rows, transposed, is a small F32 matrix [cols x block]
  // whose product with dy's matching columns is this block's share of dx.
  constexpr size_t kBlock = 256;
  std::vector<float> transposed(cols * kBlock), dy_block(n * kBlock), part(n * cols);
  for (size_t first = 0; first < rows; first += kBlock) {
    const size_t block = std::min(kBlock, rows - first);
    transposed_rows(w, first, block, transposed.data(), pool);
    for (size_t t = 0; t < n; ++t) std::copy_n(dy + t * rows + first, block, dy_block.data() + t * block);
    matmul(f32_matrix(transposed.data(), cols, block), dy_block.data(), n, part.data(), pool);
    add_in_place(dx, part.data(), n * cols);
  }
}

void TransposedWeights::add_product(const WeightMatrix& w, const float* dy, size_t n, float* dx, ThreadPool& pool) {
  const auto rows = static_cast<size_t>(w.rows), cols = static_cast<size_t>(w.cols);
  const void* key = w.packed ? static_cast<const void*>(w.packed) : static_cast<const void*>(w.data);
  auto found = copies_.find(key);
  if (found == copies_.end()) {
    const size_t bytes = rows * cols * sizeof(float);
    if (used_ + bytes > limit_) {
      add_transposed_product(w, dy, n, dx, pool);
      return;
    }
    std::vector<float> copy(rows * cols);
    transposed_rows(w, 0, rows, copy.data(), pool);
    used_ += bytes;
    found = copies_.emplace(key, std::move(copy)).first;
  }
  part_.resize(n * cols);  // kept between calls: no zeroing of a fresh buffer each time
  matmul(f32_matrix(found->second.data(), cols, rows), dy, n, part_.data(), pool);
  add_in_place(dx, part_.data(), n * cols);
}

void add_outer_products(const float* a, size_t outputs, size_t count, const float* b, size_t cols, float* c,
                        ThreadPool& pool) {
  const KernelSet& kernels = active_kernels();
  // Column chunks of 64 (the kernel's register block) spread over the pool.
  constexpr size_t kChunk = 64;
  pool.parallel_for((cols + kChunk - 1) / kChunk, [&](size_t begin, size_t end) {
    const size_t c0 = begin * kChunk, c1 = std::min(cols, end * kChunk);
    kernels.weighted_sums_f32(a, count, outputs, count, b + c0, cols, c + c0, cols, c1 - c0);
  });
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

void norm_backward_rows(const float* x, const std::vector<float>& weight, const float* dy, size_t n, size_t width,
                        float eps, float* dx, ThreadPool& pool) {
  pool.parallel_for(n, [&](size_t begin, size_t end) {
    rms_norm_backward(x + begin * width, weight.data(), dy + begin * width, end - begin, width, eps, dx + begin * width);
  });
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

void lora_forward(const TrainableMatrix& m, float factor, const float* x, size_t n, float* low, float* out,
                  ThreadPool& pool) {
  const auto rank = static_cast<size_t>(m.rank), rows = static_cast<size_t>(m.rows), cols = static_cast<size_t>(m.cols);
  matmul(f32_matrix(m.a.data(), rank, cols), x, n, low, pool);
  std::vector<float> b_t;
  transpose(m.b.data(), rows, rank, b_t);
  std::vector<float> scaled(low, low + n * rank);
  for (float& v : scaled) v *= factor;
  add_outer_products(scaled.data(), n, rank, b_t.data(), rows, out, pool);
}

void lora_backward(TrainableMatrix& m, float factor, const float* x, const float* low, const float* dy, size_t n,
                   float* dx, ThreadPool& pool) {
  const auto rank = static_cast<size_t>(m.rank), rows = static_cast<size_t>(m.rows), cols = static_cast<size_t>(m.cols);
  // d(low) is a matmul whose sum runs along the rows of dy; the gradients,
  // summed over tokens, and dx are outer products (add_outer_products).
  std::vector<float> scaled_dy(dy, dy + n * rows), low_t, d_low(n * rank), d_low_t, b_t, part;
  for (float& g : scaled_dy) g *= factor;
  // d(low) = factor * dy B.
  transpose(m.b.data(), rows, rank, b_t);
  matmul(f32_matrix(b_t.data(), rank, rows), scaled_dy.data(), n, d_low.data(), pool);
  // dB += factor * dy^T low, as its transpose low^T (factor dy) [rank x rows]:
  // the tokens x rows gradient is read as it is, not transposed.
  transpose(low, n, rank, low_t);
  part.assign(rank * rows, 0.0f);
  add_outer_products(low_t.data(), rank, n, scaled_dy.data(), rows, part.data(), pool);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t j = 0; j < rank; ++j) m.grad_b[r * rank + j] += part[j * rows + r];
  }
  // dA += d(low)^T x [rank x cols], onto the gradient directly.
  transpose(d_low.data(), n, rank, d_low_t);
  add_outer_products(d_low_t.data(), rank, n, x, cols, m.grad_a.data(), pool);
  // dx += d(low) A.
  add_outer_products(d_low.data(), n, rank, m.a.data(), cols, dx, pool);
}

}  // namespace frugal
