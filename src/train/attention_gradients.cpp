// Causal attention forward and backward (attention_gradients.h).
#include "train/attention_gradients.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/thread_pool.h"

namespace frugal {

namespace {

float dot(const float* a, const float* b, size_t n) {
  float sum = 0;
  for (size_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// The attention weights of query row i of head h over positions 0..i.
void weights_of(const float* q, const float* k, const AttentionDims& d, size_t h, size_t i, float* p) {
  const size_t q_width = d.heads * d.head_size, kv_width = d.kv_heads * d.head_size;
  const size_t kv = h / (d.heads / d.kv_heads);
  const float* qi = q + i * q_width + h * d.head_size;
  float largest = -INFINITY;
  for (size_t j = 0; j <= i; ++j) {
    p[j] = d.scale * dot(qi, k + j * kv_width + kv * d.head_size, d.head_size);
    largest = std::max(largest, p[j]);
  }
  float sum = 0;
  for (size_t j = 0; j <= i; ++j) {
    p[j] = std::exp(p[j] - largest);
    sum += p[j];
  }
  for (size_t j = 0; j <= i; ++j) p[j] /= sum;
}

}  // namespace

void causal_attention_forward(const float* q, const float* k, const float* v, const AttentionDims& d, float* out,
                              ThreadPool& pool) {
  const size_t q_width = d.heads * d.head_size, kv_width = d.kv_heads * d.head_size;
  pool.parallel_for(d.heads, [&](size_t first, size_t last) {
    std::vector<float> p(d.tokens);
    for (size_t h = first; h < last; ++h) {
      const size_t kv = h / (d.heads / d.kv_heads);
      for (size_t i = 0; i < d.tokens; ++i) {
        weights_of(q, k, d, h, i, p.data());
        float* oi = out + i * q_width + h * d.head_size;
        std::fill_n(oi, d.head_size, 0.0f);
        for (size_t j = 0; j <= i; ++j) {
          const float* vj = v + j * kv_width + kv * d.head_size;
          for (size_t e = 0; e < d.head_size; ++e) oi[e] += p[j] * vj[e];
        }
      }
    }
  });
}

void causal_attention_backward(const float* q, const float* k, const float* v, const float* d_out,
                               const AttentionDims& d, float* dq, float* dk, float* dv, ThreadPool& pool) {
  const size_t q_width = d.heads * d.head_size, kv_width = d.kv_heads * d.head_size;
  const size_t group = d.heads / d.kv_heads;
  std::fill_n(dk, d.tokens * kv_width, 0.0f);
  std::fill_n(dv, d.tokens * kv_width, 0.0f);
  // One key/value head per task: its rows of dk and dv are written by that
  // task only.
  pool.parallel_for(d.kv_heads, [&](size_t first, size_t last) {
    std::vector<float> p(d.tokens), dp(d.tokens);
    for (size_t kv = first; kv < last; ++kv) {
      for (size_t h = kv * group; h < (kv + 1) * group; ++h) {
        for (size_t i = 0; i < d.tokens; ++i) {
          weights_of(q, k, d, h, i, p.data());
          const float* doi = d_out + i * q_width + h * d.head_size;
          const float* qi = q + i * q_width + h * d.head_size;
          float* dqi = dq + i * q_width + h * d.head_size;
          float expected = 0;  // sum_j p_j dp_j
          for (size_t j = 0; j <= i; ++j) {
            dp[j] = dot(doi, v + j * kv_width + kv * d.head_size, d.head_size);
            expected += p[j] * dp[j];
          }
          std::fill_n(dqi, d.head_size, 0.0f);
          for (size_t j = 0; j <= i; ++j) {
            const float ds = p[j] * (dp[j] - expected) * d.scale;
            const float* kj = k + j * kv_width + kv * d.head_size;
            float* dkj = dk + j * kv_width + kv * d.head_size;
            float* dvj = dv + j * kv_width + kv * d.head_size;
            for (size_t e = 0; e < d.head_size; ++e) {
              dqi[e] += ds * kj[e];
              dkj[e] += ds * qi[e];
              dvj[e] += p[j] * doi[e];
            }
          }
        }
      }
    }
  });
}

}  // namespace frugal
