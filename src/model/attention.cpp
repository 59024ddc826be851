// Attention as two small matrix products per head and block of queries:
// scores = K q and out = softmax(scores) V (a weighted sum of value rows),
// both reading the cache's rows as they are stored (F32 or F16). Blocks of
// queries share every key load, which is what makes long prompts fast.
//
// Decoding one token is split differently (as flash-decoding does): the
// cached positions are cut into chunks, and one work item is a chunk of one
// key/value head for all the query heads that share it (grouped-query
// attention reads each key and value once, not once per query head). Each
// item keeps its softmax max and sum; the chunks are merged per head at the
// end. Long contexts then spread over every thread, whatever the head count.
#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "frugal/quant.h"
#include "tensor/kernel_set.h"
#include "tensor/thread_pool.h"

namespace frugal {

namespace {

constexpr size_t kQueryBlock = 32;
constexpr size_t kDecodeChunk = 256;  // cached positions per decode work item

// One KV head's rows in the cache, as stored.
struct HeadRows {
  const uint8_t* keys = nullptr;
  const uint8_t* values = nullptr;
  size_t row_elements = 0;  // from one position to the next
  bool f16 = false;
};

HeadRows head_rows(KvCache& cache, int64_t layer, size_t kv_head, size_t head_size) {
  HeadRows h;
  h.f16 = cache.precision() == KvPrecision::F16;
  const size_t element = h.f16 ? 2 : 4;
  h.row_elements = cache.row_elements();
  h.keys = static_cast<const uint8_t*>(cache.key_row(layer, 0)) + kv_head * head_size * element;
  h.values = static_cast<const uint8_t*>(cache.value_row(layer, 0)) + kv_head * head_size * element;
  return h;
}

size_t chunk_count(size_t visible) { return (visible + kDecodeChunk - 1) / kDecodeChunk; }

}  // namespace

void score_keys(const uint8_t* keys, size_t row_elements, bool f16, size_t count, const float* queries,
                size_t query_stride, size_t query_count, size_t head_size, float* scores, size_t score_stride) {
  const KernelSet& kernels = active_kernels();
  if (f16) {
    kernels.key_scores_f16(reinterpret_cast<const uint16_t*>(keys), row_elements, count, queries, query_stride,
                           query_count, head_size, scores, score_stride);
  } else {
    kernels.key_scores_f32(reinterpret_cast<const float*>(keys), row_elements, count, queries, query_stride,
                           query_count, head_size, scores, score_stride);
  }
}

void score_key_block(const uint8_t* keys, size_t row_elements, bool f16, size_t count, const float* queries,
                     size_t query_stride, size_t query_count, size_t head_size, float* scores, size_t score_stride) {
  if (f16) {
    score_keys(keys, row_elements, f16, count, queries, query_stride, query_count, head_size, scores, score_stride);
    return;
  }
  active_kernels().dot_tile[type_slot(TensorType::F32)](keys, row_elements * sizeof(float),
                                                        reinterpret_cast<const uint8_t*>(queries),
                                                        query_stride * sizeof(float), head_size, count, query_count,
                                                        scores, score_stride);
}

void add_weighted_values(const float* weights, size_t count, const uint8_t* values, size_t row_elements, bool f16,
                         float* out, size_t head_size) {
  const KernelSet& kernels = active_kernels();
  if (f16) {
    kernels.weighted_sum_f16(weights, count, reinterpret_cast<const uint16_t*>(values), row_elements, out,
                             head_size);
  } else {
    kernels.weighted_sum_f32(weights, count, reinterpret_cast<const float*>(values), row_elements, out, head_size);
  }
}

size_t decode_items(size_t visible, const AttentionShape& shape) {
  return shape.kv_head_count * chunk_count(visible);
}

size_t decode_partial_floats(size_t visible, const AttentionShape& shape) {
  return shape.head_count * chunk_count(visible) * (shape.head_size + 2);
}

void decode_item(const float* q, const KvRows& rows, size_t visible, const AttentionShape& shape, size_t item,
                 float* partials) {
  const KernelSet& kernels = active_kernels();
  const size_t hs = shape.head_size, group = shape.head_count / shape.kv_head_count;
  const size_t chunks = chunk_count(visible), partial_size = hs + 2;
  const size_t kv_head = item / chunks, chunk = item % chunks;
  const size_t first = chunk * kDecodeChunk, count = std::min(kDecodeChunk, visible - first);
  const size_t element = rows.f16 ? 2 : 4, head_offset = kv_head * hs * element;
  thread_local std::vector<float> scores;
  scores.resize(group * count);
  // The pieces of runs inside [first, first + count).
  const auto for_each_piece = [&](const auto& body) {
    for (const KvRun& run : rows.runs) {
      const size_t begin = std::max(first, run.first_position);
      const size_t end = std::min(first + count, run.first_position + run.length);
      if (begin >= end) continue;
      const size_t skip = (begin - run.first_position) * rows.row_elements * element;
      body(begin - first, end - begin, run.keys + skip + head_offset, run.values + skip + head_offset);
    }
  };
  // The group's query heads are side by side in q; each key's score does
  // not depend on the keys beside it in a call.
  const float* queries = q + kv_head * group * hs;
  for_each_piece([&](size_t at, size_t length, const uint8_t* keys, const uint8_t*) {
    score_keys(keys, rows.row_elements, rows.f16, length, queries, hs, group, hs, &scores[at], count);
  });
  float* const first_partial = partials + (kv_head * group * chunks + chunk) * partial_size;
  for (size_t g = 0; g < group; ++g) {
    float* row = &scores[g * count];
    float max = -INFINITY;
    for (size_t j = 0; j < count; ++j) {
      row[j] *= shape.scale;
      max = std::max(max, row[j]);
    }
    kernels.softmax(row, count);
    // The largest probability is exp(0) / sum: the chunk's sum back.
    const float largest = *std::max_element(row, row + count);
    float* p = first_partial + g * chunks * partial_size;
    p[0] = max;
    p[1] = 1.0f / largest;
    std::fill(p + 2, p + 2 + hs, 0.0f);
  }
  // The group's outputs in one pass over the values (pieces add on in
  // order: the same sums as one call).
  const size_t out_stride = chunks * partial_size;
  for_each_piece([&](size_t at, size_t length, const uint8_t*, const uint8_t* values) {
    if (rows.f16) {
      kernels.weighted_sums_f16(&scores[at], count, group, length, reinterpret_cast<const uint16_t*>(values),
                                rows.row_elements, first_partial + 2, out_stride, hs);
    } else {
      kernels.weighted_sums_f32(&scores[at], count, group, length, reinterpret_cast<const float*>(values),
                                rows.row_elements, first_partial + 2, out_stride, hs);
    }
  });
}

void decode_merge(const float* partials, size_t visible, const AttentionShape& shape, float* out) {
  const KernelSet& kernels = active_kernels();
  const size_t hs = shape.head_size, chunks = chunk_count(visible), partial_size = hs + 2;
  for (size_t head = 0; head < shape.head_count; ++head) {
    float* head_out = out + head * hs;
    const float* p = partials + head * chunks * partial_size;
    if (chunks == 1) {
      std::copy(p + 2, p + 2 + hs, head_out);
      continue;
    }
    float max = -INFINITY;
    for (size_t c = 0; c < chunks; ++c) max = std::max(max, p[c * partial_size]);
    double total = 0;
    std::fill(head_out, head_out + hs, 0.0f);
    for (size_t c = 0; c < chunks; ++c) {
      const float* chunk = p + c * partial_size;
      const float weight = chunk[1] * std::exp(chunk[0] - max);
      total += weight;
      kernels.axpy_f32(weight, chunk + 2, head_out, hs);
    }
    const float inverse = static_cast<float>(1.0 / total);
    for (size_t i = 0; i < hs; ++i) head_out[i] *= inverse;
  }
}

namespace {

// One new token at `position` (its key and value already stored).
void decode_attention(const float* q, size_t position, KvCache& cache, int64_t layer, const AttentionShape& shape,
                      float* out, ThreadPool& pool) {
  const size_t visible = position + 1;
  const KvRun run{0, visible, static_cast<const uint8_t*>(cache.key_row(layer, 0)),
                  static_cast<const uint8_t*>(cache.value_row(layer, 0))};
  const KvRows rows{std::span<const KvRun>(&run, 1), cache.row_elements(), cache.precision() == KvPrecision::F16};
  thread_local std::vector<float> partials;
  partials.resize(decode_partial_floats(visible, shape));
  float* const partial_base = partials.data();
  pool.parallel_for(decode_items(visible, shape), [&](size_t begin, size_t end) {
    for (size_t item = begin; item < end; ++item) decode_item(q, rows, visible, shape, item, partial_base);
  });
  decode_merge(partial_base, visible, shape, out);
}

}  // namespace

void causal_attention(const float* q, size_t tokens, int64_t start, KvCache& cache, int64_t layer,
                      const AttentionShape& shape, float* out, ThreadPool& pool) {
  if (tokens == 1) {
    decode_attention(q, static_cast<size_t>(start), cache, layer, shape, out, pool);
    return;
  }
  const KernelSet& kernels = active_kernels();
  const size_t q_width = shape.head_count * shape.head_size;
  const size_t group = shape.head_count / shape.kv_head_count;
  const size_t blocks = (tokens + kQueryBlock - 1) / kQueryBlock;
  const size_t first_position = static_cast<size_t>(start);

  pool.parallel_for(shape.head_count * blocks, [&](size_t begin, size_t end) {
    thread_local std::vector<float> scores;
    for (size_t item = begin; item < end; ++item) {
      const size_t head = item % shape.head_count;
      // Later query blocks see more keys. Taking blocks from both ends in
      // turn (0, last, 1, last - 1, ...) gives each thread's contiguous share
      // of items a similar amount of work.
      const size_t rank = item / shape.head_count;
      const size_t block = rank % 2 == 0 ? rank / 2 : blocks - 1 - rank / 2;
      const size_t t0 = block * kQueryBlock, t1 = std::min(tokens, t0 + kQueryBlock);
      const size_t visible_max = first_position + t1;
      const HeadRows h = head_rows(cache, layer, head / group, shape.head_size);
      scores.resize((t1 - t0) * visible_max);
      score_key_block(h.keys, h.row_elements, h.f16, visible_max, q + t0 * q_width + head * shape.head_size,
                      q_width, t1 - t0, shape.head_size, scores.data(), visible_max);
      for (size_t t = t0; t < t1; ++t) {
        float* row = &scores[(t - t0) * visible_max];
        const size_t visible = first_position + t + 1;  // causal: later positions are not seen
        for (size_t j = 0; j < visible; ++j) row[j] *= shape.scale;
        kernels.softmax(row, visible);
        float* head_out = out + t * q_width + head * shape.head_size;
        std::fill(head_out, head_out + shape.head_size, 0.0f);
        add_weighted_values(row, visible, h.values, h.row_elements, h.f16, head_out, shape.head_size);
      }
    }
  });
}

}  // namespace frugal
