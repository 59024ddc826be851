// Causal attention forward and backward (attention_gradients.h) as matrix
// products per head, through the engine's F32 matmul: the masked half of
// each product is computed and thrown away, which still beats row-by-row
// loops by far on short heads.
#include "train/attention_gradients.h"

#include <algorithm>
#include <vector>

#include "tensor/kernel_set.h"
#include "tensor/matmul.h"
#include "tensor/thread_pool.h"
#include "train/backward_ops.h"

namespace frugal {

namespace {

// One head's slice [tokens x head_size] of rows `width` apart, contiguous.
void gather(const float* rows, size_t width, size_t offset, size_t tokens, size_t head_size, std::vector<float>& out) {
  out.resize(tokens * head_size);
  for (size_t t = 0; t < tokens; ++t) std::copy_n(rows + t * width + offset, head_size, &out[t * head_size]);
}

// p [tokens x tokens] = causal softmax(scale * q k^T) of one head.
void attention_weights(const std::vector<float>& q, const std::vector<float>& k, const AttentionDims& d,
                       std::vector<float>& p, ThreadPool& pool) {
  const size_t n = d.tokens;
  p.resize(n * n);
  // p[i][j] = q_i . k_j: k's rows are the matrix, q's the inputs.
  matmul(f32_matrix(k.data(), n, d.head_size), q.data(), n, p.data(), pool);
  const KernelSet& kernels = active_kernels();
  for (size_t i = 0; i < n; ++i) {
    float* row = &p[i * n];
    for (size_t j = 0; j <= i; ++j) row[j] *= d.scale;
    kernels.softmax(row, i + 1);
    std::fill(row + i + 1, row + n, 0.0f);
  }
}

// out[i][e] (+)= sum_j weights[i][j] * rows[j][e]: `rows_t` is rows
// transposed [head_size x tokens].
void weighted_rows(const std::vector<float>& weights, const std::vector<float>& rows_t, const AttentionDims& d,
                   std::vector<float>& out, ThreadPool& pool) {
  out.resize(d.tokens * d.head_size);
  matmul(f32_matrix(rows_t.data(), d.head_size, d.tokens), weights.data(), d.tokens, out.data(), pool);
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
      ThreadPool alone(1);
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
    std::vector<float> qh, kh, vh, vh_t, p, oh;
    gather(k, kv_width, kv * d.head_size, d.tokens, d.head_size, kh);
    gather(v, kv_width, kv * d.head_size, d.tokens, d.head_size, vh);
    transpose(vh.data(), d.tokens, d.head_size, vh_t);
    for (size_t h = kv * group; h < (kv + 1) * group; ++h) {
      gather(q, q_width, h * d.head_size, d.tokens, d.head_size, qh);
      attention_weights(qh, kh, d, p, head_pool);
      weighted_rows(p, vh_t, d, oh, head_pool);
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
    std::vector<float> qh, kh, vh, doh, p, ds, t1, t2, part, kh_t;
    gather(k, kv_width, kv * d.head_size, n, d.head_size, kh);
    gather(v, kv_width, kv * d.head_size, n, d.head_size, vh);
    transpose(kh.data(), n, d.head_size, kh_t);
    for (size_t h = kv * group; h < (kv + 1) * group; ++h) {
      gather(q, q_width, h * d.head_size, n, d.head_size, qh);
      gather(d_out, q_width, h * d.head_size, n, d.head_size, doh);
      attention_weights(qh, kh, d, p, head_pool);
      // d(p) = d_out v^T; d(score) = p (d(p) - rowsum(p d(p))) * scale.
      ds.resize(n * n);
      matmul(f32_matrix(vh.data(), n, d.head_size), doh.data(), n, ds.data(), head_pool);
      for (size_t i = 0; i < n; ++i) {
        float* row = &ds[i * n];
        const float* pi = &p[i * n];
        const float expected = kernels.dot_f32(pi, row, i + 1);
        for (size_t j = 0; j <= i; ++j) row[j] = pi[j] * (row[j] - expected) * d.scale;
        std::fill(row + i + 1, row + n, 0.0f);
      }
      // dq = d(score) k.
      weighted_rows(ds, kh_t, d, part, head_pool);
      scatter_add(part, q_width, h * d.head_size, n, d.head_size, dq, true);
      // dk += d(score)^T q; dv += p^T d_out.
      transpose(ds.data(), n, n, t2);
      transpose(qh.data(), n, d.head_size, t1);
      weighted_rows(t2, t1, d, part, head_pool);
      scatter_add(part, kv_width, kv * d.head_size, n, d.head_size, dk, false);
      transpose(p.data(), n, n, t2);
      transpose(doh.data(), n, d.head_size, t1);
      weighted_rows(t2, t1, d, part, head_pool);
      scatter_add(part, kv_width, kv * d.head_size, n, d.head_size, dv, false);
    }
  });
}

}  // namespace frugal
