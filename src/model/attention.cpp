// Attention as two small matrix products per head and block of queries:
// scores = K q (the F32 dot-tile kernel, keys as the "weight rows") and
// out = softmax(scores) V (a weighted sum of value rows). Blocks of queries
// share every key load, which is what makes long prompts fast.
#include "model/attention.h"

#include <algorithm>
#include <vector>

#include "frugal/quant.h"
#include "tensor/kernel_set.h"
#include "tensor/thread_pool.h"

namespace frugal {

namespace {

constexpr size_t kQueryBlock = 32;

// Keys or values of one KV head for positions [0, count) as F32 rows:
// straight from an F32 cache, converted into `scratch` from an F16 one.
const float* head_rows(KvCache& cache, bool keys, int64_t layer, size_t kv_head, size_t head_size, size_t count,
                       std::vector<float>& scratch, size_t& stride) {
  const size_t row_elements = cache.row_elements();
  void* base = keys ? cache.key_row(layer, 0) : cache.value_row(layer, 0);
  if (cache.precision() == KvPrecision::F32) {
    stride = row_elements;
    return static_cast<const float*>(base) + kv_head * head_size;
  }
  scratch.resize(count * head_size);
  const auto* halves = static_cast<const uint16_t*>(base);
  for (size_t j = 0; j < count; ++j) {
    dequantize_row(TensorType::F16, halves + j * row_elements + kv_head * head_size, &scratch[j * head_size],
                   head_size);
  }
  stride = head_size;
  return scratch.data();
}

}  // namespace

void causal_attention(const float* q, size_t tokens, int64_t start, KvCache& cache, int64_t layer,
                      const AttentionShape& shape, float* out, ThreadPool& pool) {
  const KernelSet& kernels = active_kernels();
  const DotTileFn dot_f32_tile = kernels.dot_tile[type_slot(TensorType::F32)];
  const size_t q_width = shape.head_count * shape.head_size;
  const size_t group = shape.head_count / shape.kv_head_count;
  const size_t blocks = (tokens + kQueryBlock - 1) / kQueryBlock;
  const size_t first_position = static_cast<size_t>(start);

  pool.parallel_for(shape.head_count * blocks, [&](size_t begin, size_t end) {
    thread_local std::vector<float> scores, key_scratch, value_scratch;
    for (size_t item = begin; item < end; ++item) {
      const size_t head = item % shape.head_count;
      // Later query blocks see more keys. Taking blocks from both ends in
      // turn (0, last, 1, last - 1, ...) gives each thread's contiguous share
      // of items a similar amount of work.
      const size_t rank = item / shape.head_count;
      const size_t block = rank % 2 == 0 ? rank / 2 : blocks - 1 - rank / 2;
      const size_t kv_head = head / group;
      const size_t t0 = block * kQueryBlock, t1 = std::min(tokens, t0 + kQueryBlock);
      const size_t visible_max = first_position + t1;
      size_t key_stride = 0, value_stride = 0;
      const float* keys =
          head_rows(cache, true, layer, kv_head, shape.head_size, visible_max, key_scratch, key_stride);
      const float* values =
          head_rows(cache, false, layer, kv_head, shape.head_size, visible_max, value_scratch, value_stride);

      scores.resize((t1 - t0) * visible_max);
      dot_f32_tile(reinterpret_cast<const uint8_t*>(keys), key_stride * sizeof(float),
                   reinterpret_cast<const uint8_t*>(q + t0 * q_width + head * shape.head_size),
                   q_width * sizeof(float), shape.head_size, visible_max, t1 - t0, scores.data(), visible_max);
      for (size_t t = t0; t < t1; ++t) {
        float* row = &scores[(t - t0) * visible_max];
        const size_t visible = first_position + t + 1;  // causal: later positions are not seen
        for (size_t j = 0; j < visible; ++j) row[j] *= shape.scale;
        kernels.softmax(row, visible);
        float* head_out = out + t * q_width + head * shape.head_size;
        std::fill(head_out, head_out + shape.head_size, 0.0f);
        kernels.weighted_sum_f32(row, visible, values, value_stride, head_out, shape.head_size);
      }
    }
  });
}

}  // namespace frugal
