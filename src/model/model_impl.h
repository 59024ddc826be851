// Internal state of a loaded model: weight views into the mapped file.
#pragma once

#include <array>
#include <cstdlib>
#include <memory>
#include <vector>

#include "frugal/model.h"
#include "model/kv_rows.h"
#include "model/lora_adapter.h"
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

// How a forward pass reaches its tokens' keys and values: where token t sits
// (its position), where its key and value rows go, and attention of the
// batch's queries over each token's own context.
class KvBackend {
 public:
  virtual ~KvBackend() = default;
  virtual int64_t position(size_t t) const = 0;
  virtual void store(int64_t layer, size_t t, const float* key, const float* value) = 0;
  // q: [tokens][heads * head size] -> out, same shape.
  virtual void attend(int64_t layer, const float* q, size_t tokens, float* out) = 0;
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
  // Repacked copies of weights, one buffer (the matrices point into it).
  struct FreeBuffer {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  using PackedBuffer = std::unique_ptr<uint8_t, FreeBuffer>;
  PackedBuffer packed_storage;
  RepackingReport repacking;
  // LoRA: the adapters' deltas of each layer's projections (query, key,
  // value, attention output, gate, up, down) and of the output, in order.
  enum Projection { kQuery, kKey, kValue, kAttentionOutput, kGate, kUp, kDown, kProjections };
  std::vector<LoraAdapter> adapters;
  std::vector<LoraInfo> lora_info;
  std::vector<std::array<std::vector<const LoraDelta*>, kProjections>> layer_lora;
  std::vector<const LoraDelta*> output_lora;
  void load_loras(const std::vector<LoraSpec>& specs);  // lora_apply.cpp
  // out[t] += scale * B (A in[t]) for each delta; nothing without adapters.
  // `row_scales` (empty, or one per token): the adapters' scales for that
  // token's sequence (nullptr: the loaded scales).
  void apply_lora(std::span<const LoraDelta* const> deltas, const float* in, size_t tokens, float* out,
                  bool per_token, std::span<const float* const> row_scales = {});

  explicit Impl(GgufFile f) : file(std::move(f)) {}
  void load_weights();
  // After load_weights and the pool (weight_repacking.cpp).
  void repack_weights(WeightRepacking mode);
  std::vector<float> forward(std::span<const TokenId> tokens, KvCache& cache, bool all_logits);
  std::vector<float> forward(std::span<const TrieBatchEntry> entries, KvTrie& trie, bool token_invariant);
  // The layers over a batch; logits of the rows in `logit_rows`, in order.
  // `per_token`: matrix products token by token (see matmul()).
  // With `hidden_states`, the final normed hidden states of every row
  // ([n x embedding]) instead of logits.
  std::vector<float> run(std::span<const TokenId> tokens, KvBackend& backend, std::span<const size_t> logit_rows,
                         bool per_token = false, bool hidden_states = false,
                         std::span<const float* const> row_lora = {});
};

}  // namespace frugal
