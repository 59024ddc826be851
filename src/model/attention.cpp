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
#include "model/kv_rows.h"
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
  size_t key_row_bytes = 0, value_row_bytes = 0;  // from one position to the next
  KvTypes types;
};

HeadRows head_rows(KvCache& cache, int64_t layer, size_t kv_head, size_t head_size) {
  HeadRows h;
  h.types = cache.types();
  h.key_row_bytes = cache.key_row_bytes();
  h.value_row_bytes = cache.value_row_bytes();
  h.keys = static_cast<const uint8_t*>(cache.key_row(layer, 0)) + kv_head_offset(h.types.keys, kv_head, head_size);
  h.values =
      static_cast<const uint8_t*>(cache.value_row(layer, 0)) + kv_head_offset(h.types.values, kv_head, head_size);
  return h;
}

size_t chunk_count(size_t visible) { return (visible + kDecodeChunk - 1) / kDecodeChunk; }

// Block-quantized rows are read kDecodeChunk at a time into F32 scratch
// that stays in the core's cache: the memory traffic is the compressed
// rows', and the F32 kernels do the arithmetic. `body(first, length, rows)`
// gets each piece's rows, head_size floats apart.
template <class Body>
void for_each_dequantized_piece(const uint8_t* rows, size_t row_bytes, KvPrecision precision, size_t count,
                                size_t head_size, const Body& body) {
  const KernelSet& kernels = active_kernels();
  const auto read = precision == KvPrecision::Q8_0 ? kernels.kv_rows_q8_0 : kernels.kv_rows_q4_0;
  const size_t blocks = head_size / kKvQuantBlock;
  thread_local std::vector<float> scratch;
  scratch.resize(kDecodeChunk * head_size);
  for (size_t first = 0; first < count; first += kDecodeChunk) {
    const size_t length = std::min(kDecodeChunk, count - first);
    read(rows + first * row_bytes, row_bytes, length, blocks, scratch.data());
    body(first, length, scratch.data());
  }
}

size_t f32_stride(size_t row_bytes, KvPrecision precision) {
  return row_bytes / (precision == KvPrecision::F16 ? sizeof(uint16_t) : sizeof(float));
}

// out += sum_j weights[j] * value j, F32 or F16 rows read in place (summing
// in two calls gives what one call gives, bit for bit). Block rows go
// through add_weighted_values_causal's pieces instead.
void add_weighted_values(const float* weights, size_t count, const uint8_t* values, size_t row_bytes,
                         KvPrecision precision, float* out, size_t head_size) {
  const KernelSet& kernels = active_kernels();
  if (precision == KvPrecision::F16) {
    kernels.weighted_sum_f16(weights, count, reinterpret_cast<const uint16_t*>(values),
                             f32_stride(row_bytes, precision), out, head_size);
  } else {
    kernels.weighted_sum_f32(weights, count, reinterpret_cast<const float*>(values),
                             f32_stride(row_bytes, precision), out, head_size);
  }
}

}  // namespace

size_t kv_head_offset(KvPrecision precision, size_t kv_head, size_t head_size) {
  return kv_bytes(precision, kv_head * head_size);
}

const float* turned_queries(const float* q, size_t floats, KvTypes types) {
  if (!kv_rotated(types.keys)) return q;
  thread_local std::vector<float> turned;
  turned.assign(q, q + floats);
  rotate_kv_blocks(turned.data(), floats);
  return turned.data();
}

void turn_outputs_back(float* out, size_t floats, KvTypes types) {
  if (kv_rotated(types.values)) rotate_kv_blocks(out, floats);
}

void score_keys(const uint8_t* keys, size_t row_bytes, KvPrecision precision, size_t count, const float* queries,
                size_t query_stride, size_t query_count, size_t head_size, float* scores, size_t score_stride) {
  const KernelSet& kernels = active_kernels();
  switch (precision) {
    case KvPrecision::F32:
      kernels.key_scores_f32(reinterpret_cast<const float*>(keys), f32_stride(row_bytes, precision), count, queries,
                             query_stride, query_count, head_size, scores, score_stride);
      return;
    case KvPrecision::F16:
      kernels.key_scores_f16(reinterpret_cast<const uint16_t*>(keys), f32_stride(row_bytes, precision), count,
                             queries, query_stride, query_count, head_size, scores, score_stride);
      return;
    default:
      for_each_dequantized_piece(keys, row_bytes, precision, count, head_size,
                                 [&](size_t first, size_t length, const float* rows) {
                                   kernels.key_scores_f32(rows, head_size, length, queries, query_stride, query_count,
                                                          head_size, scores + first, score_stride);
                                 });
  }
}

void score_key_block(const uint8_t* keys, size_t row_bytes, KvPrecision precision, size_t count,
                     const float* queries, size_t query_stride, size_t query_count, size_t head_size, float* scores,
                     size_t score_stride) {
  const auto& dot_tile = active_kernels().dot_tile[type_slot(TensorType::F32)];
  const auto tile = [&](const void* rows, size_t stride_bytes, size_t length, float* at) {
    dot_tile(static_cast<const uint8_t*>(rows), stride_bytes, reinterpret_cast<const uint8_t*>(queries),
             query_stride * sizeof(float), head_size, length, query_count, at, score_stride);
  };
  switch (precision) {
    case KvPrecision::F32:
      tile(keys, row_bytes, count, scores);
      return;
    case KvPrecision::F16:
      score_keys(keys, row_bytes, precision, count, queries, query_stride, query_count, head_size, scores,
                 score_stride);
      return;
    default:
      for_each_dequantized_piece(keys, row_bytes, precision, count, head_size,
                                 [&](size_t first, size_t length, const float* rows) {
                                   tile(rows, head_size * sizeof(float), length, scores + first);
                                 });
  }
}

void add_weighted_values_causal(const float* weights, size_t weight_stride, size_t query_count,
                                ptrdiff_t first_visible, size_t count, const uint8_t* values, size_t row_bytes,
                                KvPrecision precision, float* out, size_t out_stride, size_t head_size) {
  const auto visible = [&](size_t q) {
    return static_cast<size_t>(std::clamp<ptrdiff_t>(first_visible + static_cast<ptrdiff_t>(q), 0,
                                                     static_cast<ptrdiff_t>(count)));
  };
  if (!kv_quantized(precision)) {
    // Four queries at a time over the rows all four see (the value rows are
    // read once for four outputs), then each one's own later rows: the same
    // additions in the same order as one query at a time.
    size_t q = 0;
    for (; q + 4 <= query_count; q += 4) {
      const size_t common = visible(q);
      add_weighted_value_groups(weights + q * weight_stride, weight_stride, 4, common, values, row_bytes, precision,
                                out + q * out_stride, out_stride, head_size);
      for (size_t i = 1; i < 4; ++i) {
        add_weighted_values(weights + (q + i) * weight_stride + common, visible(q + i) - common,
                            values + common * row_bytes, row_bytes, precision, out + (q + i) * out_stride, head_size);
      }
    }
    for (; q < query_count; ++q) {
      add_weighted_values(weights + q * weight_stride, visible(q), values, row_bytes, precision,
                          out + q * out_stride, head_size);
    }
    return;
  }
  const KernelSet& kernels = active_kernels();
  const size_t needed = query_count == 0 ? 0 : visible(query_count - 1);  // the last query sees the most
  for_each_dequantized_piece(values, row_bytes, precision, needed, head_size,
                             [&](size_t first, size_t length, const float* rows) {
                               for (size_t q = 0; q < query_count; ++q) {
                                 const size_t seen = visible(q);
                                 if (seen <= first) continue;
                                 kernels.weighted_sum_f32(weights + q * weight_stride + first,
                                                          std::min(length, seen - first), rows, head_size,
                                                          out + q * out_stride, head_size);
                               }
                             });
}

void add_weighted_value_groups(const float* weights, size_t weight_stride, size_t outputs, size_t count,
                               const uint8_t* values, size_t row_bytes, KvPrecision precision, float* out,
                               size_t out_stride, size_t head_size) {
  const KernelSet& kernels = active_kernels();
  switch (precision) {
    case KvPrecision::F32:
      kernels.weighted_sums_f32(weights, weight_stride, outputs, count, reinterpret_cast<const float*>(values),
                                f32_stride(row_bytes, precision), out, out_stride, head_size);
      return;
    case KvPrecision::F16:
      kernels.weighted_sums_f16(weights, weight_stride, outputs, count, reinterpret_cast<const uint16_t*>(values),
                                f32_stride(row_bytes, precision), out, out_stride, head_size);
      return;
    default:
      for_each_dequantized_piece(values, row_bytes, precision, count, head_size,
                                 [&](size_t first, size_t length, const float* rows) {
                                   kernels.weighted_sums_f32(weights + first, weight_stride, outputs, length, rows,
                                                             head_size, out, out_stride, head_size);
                                 });
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
  const size_t key_offset = kv_head_offset(rows.types.keys, kv_head, hs);
  const size_t value_offset = kv_head_offset(rows.types.values, kv_head, hs);
  thread_local std::vector<float> scores;
  scores.resize(group * count);
  // The pieces of runs inside [first, first + count).
  const auto for_each_piece = [&](const auto& body) {
    for (const KvRun& run : rows.runs) {
      const size_t begin = std::max(first, run.first_position);
      const size_t end = std::min(first + count, run.first_position + run.length);
      if (begin >= end) continue;
      const size_t skip = begin - run.first_position;
      body(begin - first, end - begin, run.keys + skip * rows.key_row_bytes + key_offset,
           run.values + skip * rows.value_row_bytes + value_offset);
    }
  };
  // The group's query heads are side by side in q; each key's score does
  // not depend on the keys beside it in a call.
  const float* queries = q + kv_head * group * hs;
  for_each_piece([&](size_t at, size_t length, const uint8_t* keys, const uint8_t*) {
    score_keys(keys, rows.key_row_bytes, rows.types.keys, length, queries, hs, group, hs, &scores[at], count);
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
    add_weighted_value_groups(&scores[at], count, group, length, values, rows.value_row_bytes, rows.types.values,
                              first_partial + 2, out_stride, hs);
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
  const KvRows rows{std::span<const KvRun>(&run, 1), cache.key_row_bytes(), cache.value_row_bytes(), cache.types()};
  thread_local std::vector<float> partials;
  partials.resize(decode_partial_floats(visible, shape));
  float* const partial_base = partials.data();
  pool.parallel_for(decode_items(visible, shape), [&](size_t begin, size_t end) {
    for (size_t item = begin; item < end; ++item) decode_item(q, rows, visible, shape, item, partial_base);
  });
  decode_merge(partial_base, visible, shape, out);
}

void attend_cache(const float* q, size_t tokens, int64_t start, KvCache& cache, int64_t layer,
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
      score_key_block(h.keys, h.key_row_bytes, h.types.keys, visible_max, q + t0 * q_width + head * shape.head_size,
                      q_width, t1 - t0, shape.head_size, scores.data(), visible_max);
      for (size_t t = t0; t < t1; ++t) {
        float* row = &scores[(t - t0) * visible_max];
        const size_t visible = first_position + t + 1;  // causal: later positions are not seen
        for (size_t j = 0; j < visible; ++j) row[j] *= shape.scale;
        kernels.softmax(row, visible);
        float* head_out = out + t * q_width + head * shape.head_size;
        std::fill(head_out, head_out + shape.head_size, 0.0f);
      }
      add_weighted_values_causal(scores.data(), visible_max, t1 - t0, static_cast<ptrdiff_t>(first_position + t0 + 1),
                                 visible_max, h.values, h.value_row_bytes, h.types.values,
                                 out + t0 * q_width + head * shape.head_size, q_width, shape.head_size);
    }
  });
}

}  // namespace

void causal_attention(const float* q, size_t tokens, int64_t start, KvCache& cache, int64_t layer,
                      const AttentionShape& shape, float* out, ThreadPool& pool) {
  const size_t floats = tokens * shape.head_count * shape.head_size;
  q = turned_queries(q, floats, cache.types());
  attend_cache(q, tokens, start, cache, layer, shape, out, pool);
  turn_outputs_back(out, floats, cache.types());
}

}  // namespace frugal
