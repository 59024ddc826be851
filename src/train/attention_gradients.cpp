// Causal attention forward and backward (attention_gradients.h) as matrix
// products per head, through the engine's register-blocked weighted_sums
// kernel, skipping the masked half of each product.
#include "train/attention_gradients.h"

#include <algorithm>
#include <vector>

#include "tensor/kernel_set.h"
#include "tensor/thread_pool.h"
#include "train/backward_ops.h"

namespace frugal {

namespace {

// One head's slice [tokens x head_size] of rows `width` apart, contiguous.
void gather(const float* rows, size_t width, size_t offset, size_t tokens, size_t head_size, std::vector<float>& out) {
  out.resize(tokens * head_size);
  for (size_t t = 0; t < tokens; ++t) std::copy_n(rows + t * width + offset, head_size, &out[t * head_size]);
}

// Which terms of a product c = a b a causal head needs: all of them, only
// c[i][j] with j <= i (scores and their gradient), or only a's lower
// (a[i][j], j <= i: the weights) or upper (j >= i: their transpose)
// triangle, the rest being zero.
enum class Causal { OutputLower, TermsLower, TermsUpper };

// c [rows x cols] = a [rows x count] b [count x cols], row-major, through
// the register-blocked weighted_sums kernel (an outer-product product: a
// head's rows are too short for dot-product tiles), 16 rows of c at a
// time, skipping what `causal` says is zero or unused (c's unused part is
// left 0).
void causal_product(Causal causal, const float* a, size_t rows, size_t count, const float* b, size_t cols, float* c,
                    ThreadPool& pool) {
  constexpr size_t kRows = 16;
  std::fill_n(c, rows * cols, 0.0f);
  const KernelSet& kernels = active_kernels();
  pool.parallel_for((rows + kRows - 1) / kRows, [&](size_t begin, size_t end) {
    for (size_t block = begin; block < end; ++block) {
      const size_t i0 = block * kRows, i1 = std::min(rows, i0 + kRows);
      size_t j0 = 0, j1 = count, width = cols;
      if (causal == Causal::OutputLower) width = std::min(cols, i1);
      if (causal == Causal::TermsLower) j1 = std::min(count, i1);
      if (causal == Causal::TermsUpper) j0 = i0;
      if (j0 >= j1) continue;
      kernels.weighted_sums_f32(a + i0 * count + j0, count, i1 - i0, j1 - j0, b + j0 * cols, cols, c + i0 * cols, cols,
                                width);
    }
  });
}

// p [tokens x tokens] = causal softmax(scale * q k^T) of one head; `k_t` is
// k transposed [head_size x tokens].
void attention_weights(const std::vector<float>& q, const std::vector<float>& k_t, const AttentionDims& d,
                       std::vector<float>& p, ThreadPool& pool) {
  const size_t n = d.tokens;
  p.resize(n * n);
  causal_product(Causal::OutputLower, q.data(), n, d.head_size, k_t.data(), n, p.data(), pool);
  const KernelSet& kernels = active_kernels();
  for (size_t i = 0; i < n; ++i) {
    float* row = &p[i * n];
    for (size_t j = 0; j <= i; ++j) row[j] *= d.scale;
    kernels.softmax(row, i + 1);
    std::fill(row + i + 1, row + n, 0.0f);
  }
}

void scatter_add(const std::vector<float>& head, size_t width, size_t offset, size_t tokens, size_t head_size,
                 float* rows, bool overwrite) {
  for (size_t t = 0; t < tokens; ++t) {
    float* row = rows + t * width + offset;
    for (size_t e = 0; e < head_size; ++e) row[e] = (overwrite ? 0.0f : row[e]) + head[t * head_size + e];
  }
}

// Runs body(kv, pool) for every key/value head (and the query heads that
// share it). With at least as many key/value heads as threads, the heads
// are spread over the threads and each one's products run on that thread
// alone: a head's products are small, so splitting each of them over the
// pool would cost more in waiting than it gains (the heads write disjoint
// slices of the outputs). With fewer, the heads run in turn on the pool.
template <class Body>
void for_each_kv_head(const AttentionDims& d, ThreadPool& pool, const Body& body) {
  if (pool.size() > 1 && d.kv_heads >= pool.size()) {
    pool.parallel_for(d.kv_heads, [&](size_t begin, size_t end) {
      thread_local ThreadPool alone(1);  // made once per thread: its constructor reads the CPU limits
      for (size_t kv = begin; kv < end; ++kv) body(kv, alone);
    });
    return;
  }
  for (size_t kv = 0; kv < d.kv_heads; ++kv) body(kv, pool);
}

}  // namespace

void causal_attention_forward(const float* q, const float* k, const float* v, const AttentionDims& d, float* out,
                              ThreadPool& pool) {
  const size_t q_width = d.heads * d.head_size, kv_width = d.kv_heads * d.head_size, group = d.heads / d.kv_heads;
  for_each_kv_head(d, pool, [&](size_t kv, ThreadPool& head_pool) {
    std::vector<float> qh, kh, kh_t, vh, p, oh(d.tokens * d.head_size);
    gather(k, kv_width, kv * d.head_size, d.tokens, d.head_size, kh);
    gather(v, kv_width, kv * d.head_size, d.tokens, d.head_size, vh);
    transpose(kh.data(), d.tokens, d.head_size, kh_t);
    for (size_t h = kv * group; h < (kv + 1) * group; ++h) {
      gather(q, q_width, h * d.head_size, d.tokens, d.head_size, qh);
      attention_weights(qh, kh_t, d, p, head_pool);
      causal_product(Causal::TermsLower, p.data(), d.tokens, d.tokens, vh.data(), d.head_size, oh.data(), head_pool);
      scatter_add(oh, q_width, h * d.head_size, d.tokens, d.head_size, out, true);
    }
  });
}

void causal_attention_backward(const float* q, const float* k, const float* v, const float* d_out,
                               const AttentionDims& d, float* dq, float* dk, float* dv, ThreadPool& pool) {
  const size_t n = d.tokens, q_width = d.heads * d.head_size, kv_width = d.kv_heads * d.head_size;
  const size_t group = d.heads / d.kv_heads;
  std::fill_n(dk, n * kv_width, 0.0f);
  std::fill_n(dv, n * kv_width, 0.0f);
  const KernelSet& kernels = active_kernels();
  for_each_kv_head(d, pool, [&](size_t kv, ThreadPool& head_pool) {
    std::vector<float> qh, kh, kh_t, vh, vh_t, doh, p, ds(n * n), t2, part(n * d.head_size);
    gather(k, kv_width, kv * d.head_size, n, d.head_size, kh);
    gather(v, kv_width, kv * d.head_size, n, d.head_size, vh);
    transpose(kh.data(), n, d.head_size, kh_t);
    transpose(vh.data(), n, d.head_size, vh_t);
    for (size_t h = kv * group; h < (kv + 1) * group; ++h) {
      gather(q, q_width, h * d.head_size, n, d.head_size, qh);
      gather(d_out, q_width, h * d.head_size, n, d.head_size, doh);
      attention_weights(qh, kh_t, d, p, head_pool);
      // d(p) = d_out v^T; d(score) = p (d(p) - rowsum(p d(p))) * scale.
      causal_product(Causal::OutputLower, doh.data(), n, d.head_size, vh_t.data(), n, ds.data(), head_pool);
      for (size_t i = 0; i < n; ++i) {
        float* row = &ds[i * n];
        const float* pi = &p[i * n];
        const float expected = kernels.dot_f32(pi, row, i + 1);
        for (size_t j = 0; j <= i; ++j) row[j] = pi[j] * (row[j] - expected) * d.scale;
        std::fill(row + i + 1, row + n, 0.0f);
      }
      // dq = d(score) k.
      causal_product(Causal::TermsLower, ds.data(), n, n, kh.data(), d.head_size, part.data(), head_pool);
      scatter_add(part, q_width, h * d.head_size, n, d.head_size, dq, true);
      // dk += d(score)^T q; dv += p^T d_out (the transposes are upper triangles).
      transpose(ds.data(), n, n, t2);
      causal_product(Causal::TermsUpper, t2.data(), n, n, qh.data(), d.head_size, part.data(), head_pool);
      scatter_add(part, kv_width, kv * d.head_size, n, d.head_size, dk, false);
      transpose(p.data(), n, n, t2);
      causal_product(Causal::TermsUpper, t2.data(), n, n, doh.data(), d.head_size, part.data(), head_pool);
      scatter_add(part, kv_width, kv * d.head_size, n, d.head_size, dv, false);
    }
  });
}

}  // namespace frugal
