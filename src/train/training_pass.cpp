// The LoRA trainer's forward and backward passes (training_pass.h). The
// forward pass uses the inference kernels (matmul, rms_norm, swiglu), so a
// trained adapter is fitted to the very function inference computes.
#include "train/training_pass.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "frugal/error.h"
#include "model/model_internals.h"
#include "model/weight_views.h"
#include "tensor/kernel_set.h"
#include "tensor/ops.h"
#include "train/attention_gradients.h"
#include "train/backward_ops.h"

namespace frugal {

struct LoraTrainingPass::LayerActivations {
  std::vector<float> normed1, q_raw, k_raw, q, k, v, attention, mid, normed2, gate, up, hidden;
  std::array<std::vector<float>, kLoraTargetCount> low;  // A x of each adapted projection
};

namespace {

struct Widths {
  size_t embed, head, heads, kv_heads, q, kv, ffn;
  explicit Widths(const ModelConfig& c)
      : embed(static_cast<size_t>(c.embedding_size)),
        head(static_cast<size_t>(c.head_size)),
        heads(static_cast<size_t>(c.head_count)),
        kv_heads(static_cast<size_t>(c.kv_head_count)),
        q(heads * head),
        kv(kv_heads * head),
        ffn(static_cast<size_t>(c.feed_forward_size)) {}
};

const WeightMatrix& weight_of(const LayerWeights& l, LoraTarget target) {
  switch (target) {
    case LoraTarget::Query: return l.query;
    case LoraTarget::Key: return l.key;
    case LoraTarget::Value: return l.value;
    case LoraTarget::Output: return l.attention_output;
    case LoraTarget::Gate: return l.gate;
    case LoraTarget::Up: return l.up;
    case LoraTarget::Down: return l.down;
  }
  return l.query;
}

// log-sum-exp of one row of logits.
double log_normaliser(const float* z, size_t vocab) {
  const float largest = *std::max_element(z, z + vocab);
  double sum = 0;
  for (size_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(z[i] - largest));
  return largest + std::log(sum);
}

}  // namespace

LoraTrainingPass::LoraTrainingPass(const Model& model, LoraParameters& lora) : model_(model), lora_(lora) {}

void LoraTrainingPass::prepare_angles(size_t n) {
  const ModelInternals::Weights& m = ModelInternals::of(model_);
  const auto pairs = static_cast<size_t>(m.rope->pairs());
  if (cosines_.size() >= n * pairs) return;
  cosines_.resize(n * pairs);
  sines_.resize(n * pairs);
  for (size_t t = 0; t < n; ++t) m.rope->angles(static_cast<int64_t>(t), &cosines_[t * pairs], &sines_[t * pairs]);
}

void LoraTrainingPass::layer_forward(size_t li, float* x, size_t n, bool with_adapter, LayerActivations& s) {
  const ModelInternals::Weights& m = ModelInternals::of(model_);
  ThreadPool& pool = ModelInternals::pool(model_);
  const ModelConfig& c = m.config;
  const Widths w(c);
  const LayerWeights& l = m.layers[li];
  const KernelSet& kernels = active_kernels();
  const float factor = lora_.factor();
  s.normed1.resize(n * w.embed);
  s.q.resize(n * w.q);
  s.k.resize(n * w.kv);
  s.v.resize(n * w.kv);
  s.attention.resize(n * w.q);
  s.mid.resize(n * w.embed);
  s.normed2.resize(n * w.embed);
  s.gate.resize(n * w.ffn);
  s.up.resize(n * w.ffn);
  s.hidden.resize(n * w.ffn);
  // out += the adapter's change of `target` for input `in`.
  const auto adapt = [&](LoraTarget target, const float* in, float* out) {
    const TrainableMatrix* matrix = with_adapter ? lora_.find(li, target) : nullptr;
    if (!matrix) return;
    auto& low = s.low[static_cast<size_t>(target)];
    low.resize(n * static_cast<size_t>(matrix->rank));
    lora_forward(*matrix, factor, in, n, low.data(), out, pool);
  };

  for (size_t t = 0; t < n; ++t) {
    kernels.rms_norm(x + t * w.embed, l.attention_norm.data(), &s.normed1[t * w.embed], w.embed, c.rms_epsilon);
  }
  {
    const WeightMatrix* weights[3] = {&l.query, &l.key, &l.value};
    float* outs[3] = {s.q.data(), s.k.data(), s.v.data()};
    matmul_shared_input(weights, s.normed1.data(), n, outs, pool);
  }
  adapt(LoraTarget::Query, s.normed1.data(), s.q.data());
  adapt(LoraTarget::Key, s.normed1.data(), s.k.data());
  adapt(LoraTarget::Value, s.normed1.data(), s.v.data());
  add_bias(s.q.data(), n, l.query_bias);
  add_bias(s.k.data(), n, l.key_bias);
  add_bias(s.v.data(), n, l.value_bias);
  s.q_raw = s.q;
  s.k_raw = s.k;
  const auto pairs = static_cast<size_t>(m.rope->pairs());
  for (size_t t = 0; t < n; ++t) {
    for (size_t h = 0; h < w.heads; ++h) {
      float* head = &s.q[t * w.q + h * w.head];
      if (!l.query_norm.empty()) kernels.rms_norm(head, l.query_norm.data(), head, w.head, c.rms_epsilon);
      m.rope->rotate(head, &cosines_[t * pairs], &sines_[t * pairs]);
    }
    for (size_t h = 0; h < w.kv_heads; ++h) {
      float* head = &s.k[t * w.kv + h * w.head];
      if (!l.key_norm.empty()) kernels.rms_norm(head, l.key_norm.data(), head, w.head, c.rms_epsilon);
      m.rope->rotate(head, &cosines_[t * pairs], &sines_[t * pairs]);
    }
  }
  const AttentionDims dims{n, w.heads, w.kv_heads, w.head, 1.0f / std::sqrt(static_cast<float>(w.head))};
  causal_attention_forward(s.q.data(), s.k.data(), s.v.data(), dims, s.attention.data(), pool);
  matmul(l.attention_output, s.attention.data(), n, s.mid.data(), pool);
  adapt(LoraTarget::Output, s.attention.data(), s.mid.data());
  add_in_place(s.mid.data(), x, n * w.embed);

  for (size_t t = 0; t < n; ++t) {
    kernels.rms_norm(&s.mid[t * w.embed], l.feed_forward_norm.data(), &s.normed2[t * w.embed], w.embed,
                     c.rms_epsilon);
  }
  {
    const WeightMatrix* weights[2] = {&l.gate, &l.up};
    float* outs[2] = {s.gate.data(), s.up.data()};
    matmul_shared_input(weights, s.normed2.data(), n, outs, pool);
  }
  adapt(LoraTarget::Gate, s.normed2.data(), s.gate.data());
  adapt(LoraTarget::Up, s.normed2.data(), s.up.data());
  s.hidden = s.gate;
  kernels.swiglu(s.hidden.data(), s.up.data(), n * w.ffn);
  matmul(l.down, s.hidden.data(), n, x, pool);
  adapt(LoraTarget::Down, s.hidden.data(), x);
  add_in_place(x, s.mid.data(), n * w.embed);
}

void LoraTrainingPass::layer_backward(size_t li, const float* input, size_t n, LayerActivations& s, float* dx) {
  const ModelInternals::Weights& m = ModelInternals::of(model_);
  ThreadPool& pool = ModelInternals::pool(model_);
  const ModelConfig& c = m.config;
  const Widths w(c);
  const LayerWeights& l = m.layers[li];
  const float factor = lora_.factor();
  // d(in) += d(out) through the frozen weight and the adapter of `target`.
  const auto through = [&](LoraTarget target, const float* in, const float* d_out, float* d_in) {
    transposed_.add_product(weight_of(l, target), d_out, n, d_in, pool);
    if (TrainableMatrix* matrix = lora_.find(li, target)) {
      lora_backward(*matrix, factor, in, s.low[static_cast<size_t>(target)].data(), d_out, n, d_in, pool);
    }
  };

  // Feed-forward: out = mid + down(silu(gate) * up), gate/up of norm(mid).
  std::vector<float> d_hidden(n * w.ffn, 0.0f), d_gate(n * w.ffn), d_up(n * w.ffn);
  through(LoraTarget::Down, s.hidden.data(), dx, d_hidden.data());
  pool.parallel_for(n, [&](size_t begin, size_t end) {
    const size_t at = begin * w.ffn;
    swiglu_backward(&s.gate[at], &s.up[at], &d_hidden[at], (end - begin) * w.ffn, &d_gate[at], &d_up[at]);
  });
  std::vector<float> d_normed(n * w.embed, 0.0f);
  through(LoraTarget::Gate, s.normed2.data(), d_gate.data(), d_normed.data());
  through(LoraTarget::Up, s.normed2.data(), d_up.data(), d_normed.data());
  norm_backward_rows(s.mid.data(), l.feed_forward_norm, d_normed.data(), n, w.embed, c.rms_epsilon, dx, pool);

  // Attention: mid = input + output(attention(q, k, v)).
  std::vector<float> d_attention(n * w.q, 0.0f);
  through(LoraTarget::Output, s.attention.data(), dx, d_attention.data());
  std::vector<float> dq(n * w.q), dk(n * w.kv), dv(n * w.kv);
  const AttentionDims dims{n, w.heads, w.kv_heads, w.head, 1.0f / std::sqrt(static_cast<float>(w.head))};
  causal_attention_backward(s.q.data(), s.k.data(), s.v.data(), d_attention.data(), dims, dq.data(), dk.data(),
                            dv.data(), pool);
  // Undo the rotation (its transpose: the angle negated) and the per-head norms.
  const auto pairs = static_cast<size_t>(m.rope->pairs());
  std::vector<float> negated(pairs), d_head(w.head);
  const auto unrotate = [&](float* rows, const float* raw, size_t heads, size_t width, const std::vector<float>& norm) {
    for (size_t t = 0; t < n; ++t) {
      for (size_t p = 0; p < pairs; ++p) negated[p] = -sines_[t * pairs + p];
      for (size_t h = 0; h < heads; ++h) {
        float* head = rows + t * width + h * w.head;
        m.rope->rotate(head, &cosines_[t * pairs], negated.data());
        if (norm.empty()) continue;
        std::fill(d_head.begin(), d_head.end(), 0.0f);
        rms_norm_backward(raw + t * width + h * w.head, norm.data(), head, 1, w.head, c.rms_epsilon, d_head.data());
        std::copy(d_head.begin(), d_head.end(), head);
      }
    }
  };
  unrotate(dq.data(), s.q_raw.data(), w.heads, w.q, l.query_norm);
  unrotate(dk.data(), s.k_raw.data(), w.kv_heads, w.kv, l.key_norm);
  std::fill(d_normed.begin(), d_normed.end(), 0.0f);
  through(LoraTarget::Query, s.normed1.data(), dq.data(), d_normed.data());
  through(LoraTarget::Key, s.normed1.data(), dk.data(), d_normed.data());
  through(LoraTarget::Value, s.normed1.data(), dv.data(), d_normed.data());
  norm_backward_rows(input, l.attention_norm, d_normed.data(), n, w.embed, c.rms_epsilon, dx, pool);
}

std::vector<float> LoraTrainingPass::hidden_states(std::span<const TokenId> tokens, bool with_adapter,
                                                   std::vector<std::vector<float>>* inputs,
                                                   std::vector<LayerActivations>* kept) {
  const ModelInternals::Weights& m = ModelInternals::of(model_);
  const ModelConfig& c = m.config;
  const size_t n = tokens.size(), embed = static_cast<size_t>(c.embedding_size);
  if (n == 0) throw Error("a training sequence needs at least one token");
  if (c.training_context > 0 && static_cast<int64_t>(n) > c.training_context) {
    throw Error(fmt::format("a training sequence of {} tokens is longer than the model's context ({} tokens); "
                            "shorten it or use --max-tokens to drop such examples",
                            n, c.training_context));
  }
  std::vector<float> x(n * embed);
  for (size_t t = 0; t < n; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size) {
      throw Error(fmt::format("token id {} is outside the vocabulary (size {})", tokens[t], c.vocab_size));
    }
    dequantize_matrix_row(m.token_embedding, tokens[t], x.data() + t * embed);
  }
  prepare_angles(n);
  LayerActivations scratch;
  if (kept) kept->resize(m.layers.size());
  for (size_t li = 0; li < m.layers.size(); ++li) {
    if (inputs) inputs->push_back(x);
    layer_forward(li, x.data(), n, with_adapter, kept ? (*kept)[li] : scratch);
  }
  return x;
}

std::vector<float> LoraTrainingPass::logits(std::span<const TokenId> tokens, std::span<const size_t> rows,
                                            bool with_adapter) {
  const ModelInternals::Weights& m = ModelInternals::of(model_);
  const size_t n = tokens.size(), embed = static_cast<size_t>(m.config.embedding_size);
  std::vector<size_t> all;
  if (rows.empty()) {
    for (size_t t = 0; t < n; ++t) all.push_back(t);
    rows = all;
  }
  const std::vector<float> x = hidden_states(tokens, with_adapter, nullptr, nullptr);
  std::vector<float> normed(rows.size() * embed);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] >= n) throw Error("a logits row is outside the sequence");
    active_kernels().rms_norm(&x[rows[i] * embed], m.output_norm.data(), &normed[i * embed], embed,
                              m.config.rms_epsilon);
  }
  std::vector<float> out(rows.size() * static_cast<size_t>(m.config.vocab_size));
  matmul(m.output, normed.data(), rows.size(), out.data(), ModelInternals::pool(model_));
  return out;
}

SequenceLoss LoraTrainingPass::run(const TrainingSequence& seq, float target_weight, float preserve_weight,
                                   bool backward) {
  const ModelInternals::Weights& m = ModelInternals::of(model_);
  ThreadPool& pool = ModelInternals::pool(model_);
  const ModelConfig& c = m.config;
  const size_t n = seq.tokens.size(), embed = static_cast<size_t>(c.embedding_size);
  const auto vocab = static_cast<size_t>(c.vocab_size);
  // The rows whose logits count, in order, and where each sits among them.
  std::vector<size_t> rows;
  for (const int32_t t : seq.targets) {
    if (t < 1 || static_cast<size_t>(t) >= n) throw Error(fmt::format("training target {} is outside the sequence", t));
    rows.push_back(static_cast<size_t>(t - 1));
  }
  for (const PreservedDistribution& d : seq.preserved) {
    if (d.row < 0 || static_cast<size_t>(d.row) >= n) throw Error("a preserved row is outside the sequence");
    rows.push_back(static_cast<size_t>(d.row));
  }
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  const auto slot = [&](size_t row) { return static_cast<size_t>(std::lower_bound(rows.begin(), rows.end(), row) - rows.begin()); };

  // Keep every layer's activations when they fit (no recomputation).
  const Widths w(c);
  size_t low_width = 0;
  for (const TrainableMatrix& matrix : lora_.matrices()) low_width += static_cast<size_t>(matrix.rank);
  const size_t layer_bytes =
      n * sizeof(float) * (3 * w.embed + 3 * w.q + 3 * w.kv + 3 * w.ffn + low_width / std::max<size_t>(m.layers.size(), 1));
  const bool keep = backward && layer_bytes * m.layers.size() <= kept_activation_bytes_;
  std::vector<std::vector<float>> inputs;
  std::vector<LayerActivations> kept;
  std::vector<float> x = hidden_states(seq.tokens, true, backward ? &inputs : nullptr, keep ? &kept : nullptr);
  std::vector<float> final_rows(rows.size() * embed), normed(rows.size() * embed);
  for (size_t i = 0; i < rows.size(); ++i) {
    std::copy_n(&x[rows[i] * embed], embed, &final_rows[i * embed]);
    active_kernels().rms_norm(&final_rows[i * embed], m.output_norm.data(), &normed[i * embed], embed, c.rms_epsilon);
  }
  std::vector<float> logits(rows.size() * vocab), d_logits(rows.size() * vocab, 0.0f);
  if (!rows.empty()) matmul(m.output, normed.data(), rows.size(), logits.data(), pool);

  SequenceLoss loss;
  for (const int32_t t : seq.targets) {
    const size_t i = slot(static_cast<size_t>(t - 1));
    const float* z = &logits[i * vocab];
    const double log_z = log_normaliser(z, vocab);
    loss.cross_entropy += log_z - z[seq.tokens[static_cast<size_t>(t)]];
    ++loss.targets;
    float* dz = &d_logits[i * vocab];
    for (size_t j = 0; j < vocab; ++j) dz[j] += target_weight * static_cast<float>(std::exp(z[j] - log_z));
    dz[seq.tokens[static_cast<size_t>(t)]] -= target_weight;
  }
  std::vector<double> q(vocab);
  std::vector<char> is_kept(vocab, 0);
  for (const PreservedDistribution& d : seq.preserved) {
    // KL over the kept tokens and the rest taken as one outcome. Its
    // gradient is q - p on the kept tokens and q_j - tail * q_j / rest on
    // the others (the base's rest spread like q's); every quantity in
    // double, and rest summed over the other tokens (not 1 - kept, which
    // cancels to nothing when the base is sure of one token).
    const size_t i = slot(static_cast<size_t>(d.row));
    const float* z = &logits[i * vocab];
    const double log_z = log_normaliser(z, vocab);
    for (size_t j = 0; j < vocab; ++j) q[j] = std::exp(static_cast<double>(z[j]) - log_z);
    if (d.ids.size() != d.probabilities.size()) throw Error("a preserved row needs one probability per token");
    for (const TokenId id : d.ids) {
      if (id < 0 || static_cast<size_t>(id) >= vocab) throw Error(fmt::format("preserved token {} is outside the vocabulary", id));
      is_kept[static_cast<size_t>(id)] = 1;
    }
    double rest = 0, divergence = 0;
    for (size_t j = 0; j < vocab; ++j) {
      if (!is_kept[j]) rest += q[j];
    }
    for (size_t k = 0; k < d.ids.size(); ++k) {
      const double p = d.probabilities[k];
      if (p > 0) divergence += p * (std::log(p) - std::log(std::max(q[static_cast<size_t>(d.ids[k])], 1e-300)));
    }
    if (d.tail > 0) divergence += d.tail * (std::log(d.tail) - std::log(std::max(rest, 1e-300)));
    loss.divergence += divergence;
    ++loss.preserved;
    float* dz = &d_logits[i * vocab];
    for (size_t j = 0; j < vocab; ++j) {
      if (is_kept[j]) continue;
      const double spread = rest > 0 ? d.tail * q[j] / rest : 0.0;  // q[j] <= rest: bounded by tail
      dz[j] += preserve_weight * static_cast<float>(q[j] - spread);
    }
    for (size_t k = 0; k < d.ids.size(); ++k) {
      const auto id = static_cast<size_t>(d.ids[k]);
      dz[id] += preserve_weight * static_cast<float>(q[id] - d.probabilities[k]);
    }
    for (const TokenId id : d.ids) is_kept[static_cast<size_t>(id)] = 0;
  }
  if (!backward || rows.empty()) return loss;

  std::vector<float> d_normed(rows.size() * embed, 0.0f), d_final(rows.size() * embed, 0.0f);
  transposed_.add_product(m.output, d_logits.data(), rows.size(), d_normed.data(), pool);
  rms_norm_backward(final_rows.data(), m.output_norm.data(), d_normed.data(), rows.size(), embed, c.rms_epsilon,
                    d_final.data());
  std::vector<float> dx(n * embed, 0.0f);
  for (size_t i = 0; i < rows.size(); ++i) std::copy_n(&d_final[i * embed], embed, &dx[rows[i] * embed]);
  LayerActivations recomputed;
  for (size_t li = m.layers.size(); li-- > 0;) {
    if (!keep) {
      x = inputs[li];
      layer_forward(li, x.data(), n, true, recomputed);
    }
    layer_backward(li, inputs[li].data(), n, keep ? kept[li] : recomputed, dx.data());
  }
  return loss;
}

}  // namespace frugal
