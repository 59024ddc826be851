// Causal self-attention over one sequence, forward and backward, for the
// LoRA trainer. Grouped queries: query head h reads key/value head
// h / (heads / kv_heads). The attention weights are recomputed in the
// backward pass instead of being stored (tokens^2 per head).
#pragma once

#include <cstddef>

namespace frugal {

class ThreadPool;

struct AttentionDims {
  size_t tokens = 0, heads = 0, kv_heads = 0, head_size = 0;
  float scale = 1.0f;  // of q.k
};

// q [tokens x heads*head_size], k and v [tokens x kv_heads*head_size] ->
// out [tokens x heads*head_size].
void causal_attention_forward(const float* q, const float* k, const float* v, const AttentionDims& dims, float* out,
                              ThreadPool& pool);
// Gradients of q, k and v (overwritten) from d_out.
void causal_attention_backward(const float* q, const float* k, const float* v, const float* d_out,
                               const AttentionDims& dims, float* dq, float* dk, float* dv, ThreadPool& pool);

}  // namespace frugal
