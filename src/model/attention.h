// Causal self-attention of a batch of new tokens over a sequence's KV cache.
#pragma once

#include <cstddef>
#include <cstdint>

#include "frugal/model.h"

namespace frugal {

class ThreadPool;

struct AttentionShape {
  size_t head_count = 0;
  size_t kv_head_count = 0;
  size_t head_size = 0;
  float scale = 1.0f;  // applied to q.k before the softmax
};

// q: [tokens][head_count * head_size], the queries of positions start ..
// start + tokens - 1, whose keys and values are already in `cache`.
// out: [tokens][head_count * head_size]. Query t sees positions [0, start + t].
void causal_attention(const float* q, size_t tokens, int64_t start, KvCache& cache, int64_t layer,
                      const AttentionShape& shape, float* out, ThreadPool& pool);

}  // namespace frugal
