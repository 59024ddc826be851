// Causal attention forward and backward (attention_gradients.h), row by row
// with the engine's F32 kernels: key scores, softmax, weighted sums.
#include "train/attention_gradients.h"

#include <algorithm>
#include <vector>

#include "tensor/kernel_set.h"
#include "tensor/thread_pool.h"

namespace frugal {

namespace {

struct HeadView {
  const AttentionDims& d;
  size_t q_width, kv_width, kv;  // kv: the key/value head of this query head
  HeadView(const AttentionDims& dims, size_t h)
      : d(dims), q_width(dims.heads * dims.head_size), kv_width(dims.kv_heads * dims.head_size),
        kv(h / (dims.heads / dims.kv_heads)) {}
};

// The attention weights of query row i of head h over positions 0..i.
void weights_of(const KernelSet& kernels, const float* q, const float* k, const HeadView& view, size_t h, size_t i,
                float* p) {
  const AttentionDims& d = view.d;
  kernels.key_scores_f32(k + view.kv * d.head_size, view.kv_width, i + 1, q + i * view.q_width + h * d.head_size,
                         view.q_width, 1, d.head_size, p, i + 1);
  for (size_t j = 0; j <= i; ++j) p[j] *= d.scale;
  kernels.softmax(p, i + 1);
}

}  // namespace

void causal_attention_forward(const float* q, const float* k, const float* v, const AttentionDims& d, float* out,
                              ThreadPool& pool) {
  const KernelSet& kernels = active_kernels();
  pool.parallel_for(d.heads, [&](size_t first, size_t last) {
    std::vector<float> p(d.tokens);
    for (size_t h = first; h < last; ++h) {
      const HeadView view(d, h);
      for (size_t i = 0; i < d.tokens; ++i) {
        weights_of(kernels, q, k, view, h, i, p.data());
        float* oi = out + i * view.q_width + h * d.head_size;
        std::fill_n(oi, d.head_size, 0.0f);
        kernels.weighted_sum_f32(p.data(), i + 1, v + view.kv * d.head_size, view.kv_width, oi, d.head_size);
      }
    }
  });
}

void causal_attention_backward(const float* q, const float* k, const float* v, const float* d_out,
                               const AttentionDims& d, float* dq, float* dk, float* dv, ThreadPool& pool) {
  const KernelSet& kernels = active_kernels();
  const size_t q_width = d.heads * d.head_size, kv_width = d.kv_heads * d.head_size;
  const size_t group = d.heads / d.kv_heads;
  std::fill_n(dk, d.tokens * kv_width, 0.0f);
  std::fill_n(dv, d.tokens * kv_width, 0.0f);
  // One key/value head per task: its rows of dk and dv are written by that
  // task only.
  pool.parallel_for(d.kv_heads, [&](size_t first, size_t last) {
    std::vector<float> p(d.tokens), dp(d.tokens);
    for (size_t kv = first; kv < last; ++kv) {
      const float* k_head = k + kv * d.head_size;
      const float* v_head = v + kv * d.head_size;
      for (size_t h = kv * group; h < (kv + 1) * group; ++h) {
        const HeadView view(d, h);
        for (size_t i = 0; i < d.tokens; ++i) {
          weights_of(kernels, q, k, view, h, i, p.data());
          const float* doi = d_out + i * q_width + h * d.head_size;
          const float* qi = q + i * q_width + h * d.head_size;
          float* dqi = dq + i * q_width + h * d.head_size;
          // d(p_j) = d_out . v_j; d(score_j) = p_j (d(p_j) - sum_j p_j d(p_j)).
          kernels.key_scores_f32(v_head, kv_width, i + 1, doi, q_width, 1, d.head_size, dp.data(), i + 1);
          const float expected = kernels.dot_f32(p.data(), dp.data(), i + 1);
          for (size_t j = 0; j <= i; ++j) dp[j] = p[j] * (dp[j] - expected) * d.scale;
          std::fill_n(dqi, d.head_size, 0.0f);
          kernels.weighted_sum_f32(dp.data(), i + 1, k_head, kv_width, dqi, d.head_size);
          for (size_t j = 0; j <= i; ++j) {
            kernels.axpy_f32(dp[j], qi, dk + j * kv_width + kv * d.head_size, d.head_size);
            kernels.axpy_f32(p[j], doi, dv + j * kv_width + kv * d.head_size, d.head_size);
          }
        }
      }
    }
  });
}

}  // namespace frugal
