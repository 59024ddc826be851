// Causal self-attention of a batch of new tokens over a sequence's KV cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "frugal/model.h"

namespace frugal {

class ThreadPool;

struct AttentionShape {
  size_t head_count = 0;
  size_t kv_head_count = 0;
  size_t head_size = 0;
  float scale = 1.0f;  // applied to q.k before the softmax
};

// Cached positions of one sequence as runs of evenly spaced rows (a
// contiguous cache is one run; the KV trie's path, one per run of
// consecutive slots in a page). Pointers are to the run's first row of the
// layer, KV head 0.
struct KvRun {
  size_t first_position = 0;
  size_t length = 0;
  const uint8_t* keys = nullptr;
  const uint8_t* values = nullptr;
};
struct KvRows {
  std::span<const KvRun> runs;  // in position order, from 0
  size_t key_row_bytes = 0, value_row_bytes = 0;  // from one position to the next
  KvTypes types;
};

// Reads of cached rows for attention: `count` rows `row_bytes` apart, one KV
// head's slice of each (from kv_head_offset), as stored: F32 and F16 read in
// place, block types a piece at a time through cache-sized F32 scratch. The
// one place that dispatches on the precision, for the contiguous cache and
// the KV trie alike. Q4_H rows are read turned: callers turn the queries and
// outputs (kv_rotated).
size_t kv_head_offset(KvPrecision precision, size_t kv_head, size_t head_size);  // bytes into a row
// scores[q * score_stride + j] = key j . query q, for a few queries (decode).
void score_keys(const uint8_t* keys, size_t row_bytes, KvPrecision precision, size_t count, const float* queries,
                size_t query_stride, size_t query_count, size_t head_size, float* scores, size_t score_stride);
// The same for a block of many queries (prompts): F32 keys through the dot
// tile, which shares each key load among the queries.
void score_key_block(const uint8_t* keys, size_t row_bytes, KvPrecision precision, size_t count,
                     const float* queries, size_t query_stride, size_t query_count, size_t head_size, float* scores,
                     size_t score_stride);
// Causal sums for a block of queries, each value piece read once for all:
// out[q * out_stride + i] += sum_{j < visible(q)} weights[q * weight_stride
// + j] * value j[i] with visible(q) = clamp(first_visible + q, 0, count).
void add_weighted_values_causal(const float* weights, size_t weight_stride, size_t query_count,
                                ptrdiff_t first_visible, size_t count, const uint8_t* values, size_t row_bytes,
                                KvPrecision precision, float* out, size_t out_stride, size_t head_size);
// The same for `outputs` weight rows over the same values, read once:
// out[o * out_stride + i] += sum_j weights[o * weight_stride + j] * value j[i].
void add_weighted_value_groups(const float* weights, size_t weight_stride, size_t outputs, size_t count,
                               const uint8_t* values, size_t row_bytes, KvPrecision precision, float* out,
                               size_t out_stride, size_t head_size);

// Q4_H rows are stored turned (kv_rows.h): attention turns its queries
// when the keys are Q4_H (into thread-local scratch; q itself otherwise)
// and, after the weighted sums, its outputs back when the values are.
// `floats` is a multiple of 32.
const float* turned_queries(const float* q, size_t floats, KvTypes types);
void turn_outputs_back(float* out, size_t floats, KvTypes types);

// Attention of one token (all its query heads, q: [head_count * head_size])
// over `visible` cached positions, in work items of one KV head and a chunk
// of positions (flash-decoding); the result does not depend on how the
// positions are split into runs. Used by the contiguous cache and the trie
// alike, so a beam decoded in a batch gives what it gives alone, bit for
// bit. Callers run the items in their own parallel loops:
size_t decode_items(size_t visible, const AttentionShape& shape);  // KV heads x chunks
// Floats of partial results one token needs (per query head and chunk).
size_t decode_partial_floats(size_t visible, const AttentionShape& shape);
void decode_item(const float* q, const KvRows& rows, size_t visible, const AttentionShape& shape, size_t item,
                 float* partials);
// After all items: the chunks merged into out [head_count * head_size].
void decode_merge(const float* partials, size_t visible, const AttentionShape& shape, float* out);

// q: [tokens][head_count * head_size], the queries of positions start ..
// start + tokens - 1, whose keys and values are already in `cache`.
// out: [tokens][head_count * head_size]. Query t sees positions [0, start + t].
void causal_attention(const float* q, size_t tokens, int64_t start, KvCache& cache, int64_t layer,
                      const AttentionShape& shape, float* out, ThreadPool& pool);

}  // namespace frugal
