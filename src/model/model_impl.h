// Internal state of a loaded model: weight views into the mapped file.
#pragma once

#include <memory>
#include <vector>

#include "frugal/model.h"
#include "model/rope.h"
#include "tensor/matmul.h"
#include "tensor/thread_pool.h"

namespace frugal {

struct LayerWeights {
  std::vector<float> attention_norm;
  WeightMatrix query, key, value, attention_output;
  std::vector<float> query_bias, key_bias, value_bias;  // empty when absent
  std::vector<float> query_norm, key_norm;              // qwen3 per-head RMSNorm
  std::vector<float> feed_forward_norm;
  WeightMatrix gate, up, down;
};

struct Model::Impl {
  GgufFile file;
  ModelConfig config;
  WeightMatrix token_embedding;
  WeightMatrix output;  // token_embedding when tied
  std::vector<float> output_norm;
  std::vector<LayerWeights> layers;
  std::unique_ptr<RotaryEmbedding> rope;
  std::unique_ptr<ThreadPool> pool;

  explicit Impl(GgufFile f) : file(std::move(f)) {}
  void load_weights();
  std::vector<float> forward(std::span<const TokenId> tokens, KvCache& cache, bool all_logits);
};

}  // namespace frugal
