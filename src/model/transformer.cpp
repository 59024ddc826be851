// The forward pass: all tokens of a batch go through each layer together, so
// every weight matrix is read once per batch.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/quant.h"
#include "model/attention.h"
#include "model/model_impl.h"
#include "model/pooling.h"
#include "model/weight_views.h"
#include "tensor/kernel_set.h"
#include "tensor/ops.h"

namespace frugal {

namespace {

// Keys and values of a contiguous single-sequence cache.
class CacheBackend final : public KvBackend {
 public:
  CacheBackend(KvCache& cache, const AttentionShape& shape, ThreadPool& pool)
      : cache_(cache), shape_(shape), pool_(pool), start_(cache.size()) {}
  int64_t position(size_t t) const override { return start_ + static_cast<int64_t>(t); }
  void store(int64_t layer, size_t t, const float* key, const float* value) override {
    const size_t n = cache_.row_elements();
    store_kv_row(key, cache_.key_row(layer, position(t)), n, cache_.types().keys);
    store_kv_row(value, cache_.value_row(layer, position(t)), n, cache_.types().values);
  }
  void attend(int64_t layer, const float* q, size_t tokens, float* out) override {
    causal_attention(q, tokens, start_, cache_, layer, shape_, out, pool_);
  }

 private:
  KvCache& cache_;
  const AttentionShape& shape_;
  ThreadPool& pool_;
  int64_t start_;
};

AttentionShape attention_shape_of(const ModelConfig& c) {
  const size_t head_size = static_cast<size_t>(c.head_size);
  return {static_cast<size_t>(c.head_count), static_cast<size_t>(c.kv_head_count), head_size,
          1.0f / std::sqrt(static_cast<float>(head_size))};
}

}  // namespace

std::vector<float> Model::Impl::forward(std::span<const TokenId> tokens, KvCache& cache, bool all_logits) {
  const ModelConfig& c = config;
  const size_t n = tokens.size();
  if (n == 0) throw Error("forward pass needs at least one token");
  const int64_t start = cache.size();
  if (start + static_cast<int64_t>(n) > cache.capacity()) {
    throw Error(fmt::format("context is full: {} tokens cached + {} new > context size {}; use a larger -c",
                            start, n, cache.capacity()));
  }
  if (cache.row_elements() != static_cast<size_t>(c.kv_head_count * c.head_size) ||
      cache.keys_.size() != layers.size()) {
    throw Error("KV cache was made for a different model");
  }
  const AttentionShape shape = attention_shape_of(c);
  CacheBackend backend(cache, shape, *pool);
  std::vector<size_t> logit_rows;
  for (size_t t = all_logits ? 0 : n - 1; t < n; ++t) logit_rows.push_back(t);
  auto logits = run(tokens, backend, logit_rows);
  cache.size_ = start + static_cast<int64_t>(n);
  return logits;
}

std::vector<float> Model::embed(std::span<const TokenId> tokens) {
  if (tokens.empty()) throw Error("an embedding needs at least one token");
  const ModelConfig& c = impl_->config;
  KvCache cache(c, static_cast<int64_t>(tokens.size()));
  const AttentionShape shape = attention_shape_of(c);  // the backend keeps a reference
  CacheBackend backend(cache, shape, *impl_->pool);
  const std::vector<float> hidden = impl_->run(tokens, backend, {}, false, true);
  return pooled_unit_vector(hidden.data(), tokens.size(), static_cast<size_t>(c.embedding_size));
}

std::vector<float> Model::Impl::run(std::span<const TokenId> tokens, KvBackend& backend,
                                    std::span<const size_t> logit_rows, bool per_token, bool hidden_states,
                                    std::span<const float* const> row_lora) {
  const ModelConfig& c = config;
  const size_t n = tokens.size();
  const size_t embed = static_cast<size_t>(c.embedding_size);
  const size_t head_size = static_cast<size_t>(c.head_size);
  const size_t q_width = static_cast<size_t>(c.head_count) * head_size;
  const size_t kv_width = static_cast<size_t>(c.kv_head_count) * head_size;
  const size_t ffn = static_cast<size_t>(c.feed_forward_size);
  const KernelSet& kernels = active_kernels();

  std::vector<float> x(n * embed), normed(n * embed), q(n * q_width), k(n * kv_width), v(n * kv_width);
  std::vector<float> attention(n * q_width), projected(n * embed), gate(n * ffn), up(n * ffn);
  for (size_t t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size) {
      throw Error(fmt::format("token id {} is outside the vocabulary (size {})", tokens[t], c.vocab_size));
    }
    dequantize_matrix_row(token_embedding, tokens[t], x.data() + t * embed);
  }

  // Rotation angles per position, shared by every layer and head.
  const size_t pairs = static_cast<size_t>(rope->pairs());
  std::vector<float> cosines(n * pairs), sines(n * pairs);
  for (size_t t = 0; t < n; ++t) rope->angles(backend.position(t), &cosines[t * pairs], &sines[t * pairs]);

  for (size_t li = 0; li < layers.size(); ++li) {
    const LayerWeights& l = layers[li];
    for (size_t t = 0; t < n; ++t) {
      kernels.rms_norm(&x[t * embed], l.attention_norm.data(), &normed[t * embed], embed, c.rms_epsilon);
    }
    {
      const WeightMatrix* weights[3] = {&l.query, &l.key, &l.value};
      float* outs[3] = {q.data(), k.data(), v.data()};
      matmul_shared_input(weights, normed.data(), n, outs, *pool, per_token);
      if (!adapters.empty()) {
        apply_lora(layer_lora[li][kQuery], normed.data(), n, q.data(), per_token, row_lora);
        apply_lora(layer_lora[li][kKey], normed.data(), n, k.data(), per_token, row_lora);
        apply_lora(layer_lora[li][kValue], normed.data(), n, v.data(), per_token, row_lora);
      }
    }
    add_bias(q.data(), n, l.query_bias);
    add_bias(k.data(), n, l.key_bias);
    add_bias(v.data(), n, l.value_bias);
    for (size_t t = 0; t < n; ++t) {
      for (int64_t h = 0; h < c.head_count; ++h) {
        float* head = &q[t * q_width + static_cast<size_t>(h) * head_size];
        if (!l.query_norm.empty()) kernels.rms_norm(head, l.query_norm.data(), head, head_size, c.rms_epsilon);
        rope->rotate(head, &cosines[t * pairs], &sines[t * pairs]);
      }
      for (int64_t h = 0; h < c.kv_head_count; ++h) {
        float* head = &k[t * kv_width + static_cast<size_t>(h) * head_size];
        if (!l.key_norm.empty()) kernels.rms_norm(head, l.key_norm.data(), head, head_size, c.rms_epsilon);
        rope->rotate(head, &cosines[t * pairs], &sines[t * pairs]);
      }
      backend.store(static_cast<int64_t>(li), t, &k[t * kv_width], &v[t * kv_width]);
    }
    backend.attend(static_cast<int64_t>(li), q.data(), n, attention.data());
    matmul(l.attention_output, attention.data(), n, projected.data(), *pool, per_token);
    if (!adapters.empty()) {
      apply_lora(layer_lora[li][kAttentionOutput], attention.data(), n, projected.data(), per_token, row_lora);
    }
    add_in_place(x.data(), projected.data(), n * embed);

    for (size_t t = 0; t < n; ++t) {
      kernels.rms_norm(&x[t * embed], l.feed_forward_norm.data(), &normed[t * embed], embed, c.rms_epsilon);
    }
    {
      const WeightMatrix* weights[2] = {&l.gate, &l.up};
      float* outs[2] = {gate.data(), up.data()};
      matmul_shared_input(weights, normed.data(), n, outs, *pool, per_token);
      if (!adapters.empty()) {
        apply_lora(layer_lora[li][kGate], normed.data(), n, gate.data(), per_token, row_lora);
        apply_lora(layer_lora[li][kUp], normed.data(), n, up.data(), per_token, row_lora);
      }
    }
    kernels.swiglu(gate.data(), up.data(), n * ffn);
    matmul(l.down, gate.data(), n, projected.data(), *pool, per_token);
    if (!adapters.empty()) {
      apply_lora(layer_lora[li][kDown], gate.data(), n, projected.data(), per_token, row_lora);
    }
    add_in_place(x.data(), projected.data(), n * embed);
  }

  if (hidden_states) {
    for (size_t t = 0; t < n; ++t) {
      kernels.rms_norm(&x[t * embed], output_norm.data(), &normed[t * embed], embed, c.rms_epsilon);
    }
    return normed;
  }
  // Only the rows whose logits are wanted go through the output matrix.
  for (size_t i = 0; i < logit_rows.size(); ++i) {
    kernels.rms_norm(&x[logit_rows[i] * embed], output_norm.data(), &normed[i * embed], embed, c.rms_epsilon);
  }
  std::vector<float> logits(logit_rows.size() * static_cast<size_t>(c.vocab_size));
  if (!logit_rows.empty()) {
    matmul(output, normed.data(), logit_rows.size(), logits.data(), *pool, per_token);
    std::vector<const float*> logit_lora;  // the scales of the rows whose logits are made
    for (const size_t row : logit_rows) {
      if (!row_lora.empty()) logit_lora.push_back(row_lora[row]);
    }
    apply_lora(output_lora, normed.data(), logit_rows.size(), logits.data(), per_token, logit_lora);
  }
  return logits;
}

}  // namespace frugal
