// Attention against a naive softmax attention in double: decoding one token
// over contexts that span several 256-position chunks (merged at the end) and
// prompt blocks, over caches of every KV type (the reference reads the rows
// back with load_kv_row; attention reads them its own way, and turns the
// queries instead of the rows for Q4_H); and the decode result does not
// depend on how the cached positions are split into runs (the KV trie's
// pages), bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "frugal/model.h"
#include "frugal/quant.h"
#include "model/attention.h"
#include "model/kv_rows.h"
#include "tensor/thread_pool.h"

namespace frugal {
namespace {

ModelConfig attention_config() {
  ModelConfig c;
  c.layer_count = 1;
  c.head_count = 6;
  c.kv_head_count = 2;
  c.head_size = 64;
  c.embedding_size = 384;
  c.vocab_size = 16;
  c.feed_forward_size = 16;
  c.training_context = 2048;
  c.rope_dimensions = 64;
  return c;
}

std::vector<float> normal(size_t n, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Keys and values of `positions` positions written into the cache (rounded
// or quantized as the cache stores them); returns them as the cache holds
// them.
void fill(KvCache& cache, size_t positions, std::vector<float>& keys, std::vector<float>& values) {
  const size_t width = cache.row_elements();
  keys = normal(positions * width, 1.5f, 1);
  values = normal(positions * width, 1.0f, 2);
  for (size_t p = 0; p < positions; ++p) {
    void* key_row = cache.key_row(0, static_cast<int64_t>(p));
    void* value_row = cache.value_row(0, static_cast<int64_t>(p));
    store_kv_row(&keys[p * width], key_row, width, cache.types().keys);
    store_kv_row(&values[p * width], value_row, width, cache.types().values);
    load_kv_row(key_row, cache.types().keys, &keys[p * width], width);
    load_kv_row(value_row, cache.types().values, &values[p * width], width);
  }
}

// out for query token t (position start + t) by the book, in double.
std::vector<double> naive(const std::vector<float>& q, size_t t, size_t visible, const std::vector<float>& keys,
                          const std::vector<float>& values, const AttentionShape& s) {
  const size_t width = s.kv_head_count * s.head_size, q_width = s.head_count * s.head_size;
  std::vector<double> out(q_width);
  for (size_t h = 0; h < s.head_count; ++h) {
    const size_t kv = h / (s.head_count / s.kv_head_count);
    std::vector<double> score(visible);
    double max = -INFINITY;
    for (size_t j = 0; j < visible; ++j) {
      double dot = 0;
      for (size_t i = 0; i < s.head_size; ++i) {
        dot += static_cast<double>(q[t * q_width + h * s.head_size + i]) * keys[j * width + kv * s.head_size + i];
      }
      score[j] = dot * s.scale;
      max = std::max(max, score[j]);
    }
    double total = 0;
    for (double& x : score) total += (x = std::exp(x - max));
    for (size_t i = 0; i < s.head_size; ++i) {
      double sum = 0;
      for (size_t j = 0; j < visible; ++j) sum += score[j] * values[j * width + kv * s.head_size + i];
      out[h * s.head_size + i] = sum / total;
    }
  }
  return out;
}

class Attention : public ::testing::TestWithParam<KvTypes> {};

TEST_P(Attention, DecodeAndPromptBlocksMatchANaiveAttention) {
  const ModelConfig config = attention_config();
  const AttentionShape shape{6, 2, 64, 0.125f};
  ThreadPool pool(3);
  for (const size_t positions : {1u, 255u, 256u, 257u, 700u}) {
    KvCache cache(config, 1024, GetParam());
    std::vector<float> keys, values;
    fill(cache, positions, keys, values);
    // Decode: the last position's query; prompt: the last 40 positions.
    const size_t q_width = 384;
    for (const size_t tokens : {size_t{1}, std::min<size_t>(40, positions)}) {
      const size_t start = positions - tokens;
      const std::vector<float> q = normal(tokens * q_width, 1.0f, static_cast<uint32_t>(positions + tokens));
      std::vector<float> out(tokens * q_width);
      causal_attention(q.data(), tokens, static_cast<int64_t>(start), cache, 0, shape, out.data(), pool);
      for (size_t t = 0; t < tokens; ++t) {
        const std::vector<double> expected = naive(q, t, start + t + 1, keys, values, shape);
        for (size_t i = 0; i < q_width; ++i) {
          ASSERT_NEAR(out[t * q_width + i], expected[i], 2e-5 * (1 + std::fabs(expected[i])))
              << positions << " positions, " << tokens << " tokens, token " << t << ", element " << i;
        }
      }
    }
  }
}

TEST_P(Attention, DecodeDoesNotDependOnHowPositionsAreSplitIntoRuns) {
  const ModelConfig config = attention_config();
  const AttentionShape shape{6, 2, 64, 0.125f};
  const size_t positions = 600;
  KvCache cache(config, 1024, GetParam());
  std::vector<float> keys, values;
  fill(cache, positions, keys, values);
  const std::vector<float> q = normal(384, 1.0f, 9);
  const auto* key_base = static_cast<const uint8_t*>(cache.key_row(0, 0));
  const auto* value_base = static_cast<const uint8_t*>(cache.value_row(0, 0));
  const size_t key_row_bytes = cache.key_row_bytes(), value_row_bytes = cache.value_row_bytes();
  const auto run_with = [&](const std::vector<size_t>& cuts) {
    std::vector<KvRun> runs;
    size_t first = 0;
    for (size_t cut : cuts) {
      runs.push_back({first, cut - first, key_base + first * key_row_bytes, value_base + first * value_row_bytes});
      first = cut;
    }
    const KvRows rows{runs, key_row_bytes, value_row_bytes, GetParam()};
    std::vector<float> partials(decode_partial_floats(positions, shape)), out(384);
    for (size_t item = 0; item < decode_items(positions, shape); ++item) {
      decode_item(q.data(), rows, positions, shape, item, partials.data());
    }
    decode_merge(partials.data(), positions, shape, out.data());
    return out;
  };
  const std::vector<float> whole = run_with({positions});
  EXPECT_EQ(run_with({4, 5, 250, 256, 300, 599, positions}), whole);
  EXPECT_EQ(run_with({1, 2, 3, 512, positions}), whole);
}

INSTANTIATE_TEST_SUITE_P(Caches, Attention,
                         ::testing::Values(KvTypes(KvPrecision::F32), KvTypes(KvPrecision::F16),
                                           KvTypes(KvPrecision::Q8_0), KvTypes(KvPrecision::Q4_0),
                                           KvTypes(KvPrecision::Q4_H), KvTypes(KvPrecision::Q8_0, KvPrecision::Q4_H),
                                           KvTypes(KvPrecision::Q4_H, KvPrecision::F16)),
                         [](const auto& info) {
                           std::string name = kv_types_name(info.param);
                           std::replace(name.begin(), name.end(), '/', '_');
                           return name;
                         });

}  // namespace
}  // namespace frugal
