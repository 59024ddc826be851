// Writes random-weight models (frugal synth, and the tests' model builder).
// Values come from a counter-based generator keyed by (seed, tensor name,
// row), so each chunk of rows can be made on any thread in any order and the
// file is still the same bytes.
#include <algorithm>
#include <cmath>
#include <exception>
#include <mutex>
#include <numbers>
#include <thread>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/quant.h"
#include "frugal/synth.h"

namespace frugal {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t fnv1a64(std::string_view text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// A small sequential generator for the values of one row.
class RowRandom {
 public:
  explicit RowRandom(uint64_t key) : state_(key) {}
  // Uniform in (0, 1], never 0 (the logarithm below needs that).
  double uniform() { return (static_cast<double>(next() >> 11) + 1.0) * 0x1.0p-53; }
  // Standard normal by Box-Muller, two values per pair of uniforms.
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double radius = std::sqrt(-2.0 * std::log(uniform()));
    const double angle = 2.0 * std::numbers::pi * uniform();
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }

 private:
  uint64_t next() { return splitmix64(state_++ * 0x9e3779b97f4a7c15ull); }
  uint64_t state_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

enum class Fill { Normal, Uniform };

struct TensorPlan {
  std::string name;
  TensorType type;
  std::vector<int64_t> shape;
  Fill fill;
  float center = 0.0f, spread = 0.0f;  // Normal: N(center, spread^2); Uniform: center +- spread
  const std::vector<float>* constant = nullptr;  // exact values (rope_freqs.weight)
};

// Produces rows [first, first + count) of `plan` in its stored type,
// splitting the rows across `threads`.
void make_rows(const TensorPlan& plan, uint64_t seed, size_t threads, int64_t first, int64_t count,
               std::span<uint8_t> out) {
  const int64_t row_length = plan.shape[0];
  const size_t row_bytes = tensor_row_bytes(plan.type, static_cast<size_t>(row_length));
  const uint64_t tensor_key = splitmix64(seed ^ fnv1a64(plan.name));
  auto work = [&](int64_t begin, int64_t end) {
    std::vector<float> values(static_cast<size_t>(row_length));
    for (int64_t row = begin; row < end; ++row) {
      if (plan.constant) {
        std::copy_n(plan.constant->begin() + row * row_length, row_length, values.begin());
      } else {
        RowRandom random(splitmix64(tensor_key + static_cast<uint64_t>(row)));
        for (auto& v : values) {
          v = plan.fill == Fill::Normal
                  ? static_cast<float>(plan.center + plan.spread * random.normal())
                  : static_cast<float>(plan.center + plan.spread * (2.0 * random.uniform() - 1.0));
        }
      }
      quantize_row(plan.type, values.data(), out.data() + static_cast<size_t>(row - first) * row_bytes,
                   values.size());
    }
  };
  // Threads only pay off for chunks with real work in them.
  const int64_t parts = std::min<int64_t>(static_cast<int64_t>(threads), count * row_length / 65536 + 1);
  if (parts <= 1) {
    work(first, first + count);
    return;
  }
  std::vector<std::jthread> workers;
  std::exception_ptr failure;
  std::mutex failure_mutex;
  for (int64_t p = 0; p < parts; ++p) {
    const int64_t begin = first + count * p / parts, end = first + count * (p + 1) / parts;
    workers.emplace_back([&, begin, end] {
      try {
        work(begin, end);
      } catch (...) {
        std::lock_guard lock(failure_mutex);
        if (!failure) failure = std::current_exception();
      }
    });
  }
  workers.clear();  // joins
  if (failure) std::rethrow_exception(failure);
}

// A BERT encoder as llama.cpp's converter writes it: token, token-type and
// position embeddings with a LayerNorm, then post-norm blocks with biases
// everywhere and a GELU feed-forward (no gate).
template <typename Matrix, typename Norm, typename Bias>
void plan_bert_tensors(const ModelShape& s, float w_std, std::vector<TensorPlan>& plans, Matrix& matrix, Norm& norm,
                       Bias& bias) {
  matrix("token_embd.weight", s.embedding, s.vocab);
  // Kept in F32 as llama.cpp's converter keeps it: its row is added to F32 activations as it is.
  plans.push_back({"token_types.weight", TensorType::F32, {s.embedding, 2}, Fill::Normal, 0.0f, w_std});
  matrix("position_embd.weight", s.embedding, s.context);
  norm("token_embd_norm.weight", s.embedding);
  bias("token_embd_norm.bias", s.embedding);
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = fmt::format("blk.{}.", i);
    for (const char* projection : {"attn_q", "attn_k", "attn_v", "attn_output"}) {
      matrix(p + projection + ".weight", s.embedding, s.embedding);
      bias(p + projection + ".bias", s.embedding);
    }
    norm(p + "attn_output_norm.weight", s.embedding);
    bias(p + "attn_output_norm.bias", s.embedding);
    matrix(p + "ffn_up.weight", s.embedding, s.feed_forward);
    bias(p + "ffn_up.bias", s.feed_forward);
    matrix(p + "ffn_down.weight", s.feed_forward, s.embedding);
    bias(p + "ffn_down.bias", s.embedding);
    norm(p + "layer_output_norm.weight", s.embedding);
    bias(p + "layer_output_norm.bias", s.embedding);
  }
}

// Every tensor of the model, in the order they are written.
std::vector<TensorPlan> plan_tensors(const SyntheticModelSpec& spec, int& fallbacks) {
  const ModelShape& s = spec.shape;
  const SyntheticWeights& w = spec.weights;
  const int64_t head_size = s.resolved_head_size();
  const int64_t q_width = s.heads * head_size, kv_width = s.kv_heads * head_size;
  std::vector<TensorPlan> plans;
  auto matrix = [&](std::string name, int64_t cols, int64_t rows) {
    const TensorType type = weight_tensor_type(spec.format, name, cols, s.layers, s.tied_embeddings);
    // Rows that are not whole blocks of the asked-for type force another.
    if (cols % static_cast<int64_t>(tensor_type_traits(spec.format.base).block_elements) != 0) ++fallbacks;
    plans.push_back({std::move(name), type, {cols, rows}, Fill::Normal, 0.0f, w.matrix_std});
  };
  auto norm = [&](std::string name, int64_t size) {
    plans.push_back({std::move(name), TensorType::F32, {size}, Fill::Uniform, 1.0f, w.norm_spread});
  };
  auto bias = [&](std::string name, int64_t size) {
    plans.push_back({std::move(name), TensorType::F32, {size}, Fill::Uniform, 0.0f, w.bias_spread});
  };
  if (s.architecture == "bert") {
    plan_bert_tensors(s, w.matrix_std, plans, matrix, norm, bias);
    return plans;
  }
  matrix("token_embd.weight", s.embedding, s.vocab);
  norm("output_norm.weight", s.embedding);
  if (!s.rope_frequency_factors.empty()) {
    plans.push_back({"rope_freqs.weight", TensorType::F32, {static_cast<int64_t>(s.rope_frequency_factors.size())},
                     Fill::Uniform, 0.0f, 0.0f, &s.rope_frequency_factors});
  }
  if (!s.tied_embeddings) matrix("output.weight", s.embedding, s.vocab);
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = fmt::format("blk.{}.", i);
    norm(p + "attn_norm.weight", s.embedding);
    matrix(p + "attn_q.weight", s.embedding, q_width);
    matrix(p + "attn_k.weight", s.embedding, kv_width);
    matrix(p + "attn_v.weight", s.embedding, kv_width);
    matrix(p + "attn_output.weight", q_width, s.embedding);
    if (s.qkv_bias) {
      bias(p + "attn_q.bias", q_width);
      bias(p + "attn_k.bias", kv_width);
      bias(p + "attn_v.bias", kv_width);
    }
    if (s.qk_norm) {
      norm(p + "attn_q_norm.weight", head_size);
      norm(p + "attn_k_norm.weight", head_size);
    }
    norm(p + "ffn_norm.weight", s.embedding);
    matrix(p + "ffn_gate.weight", s.embedding, s.feed_forward);
    matrix(p + "ffn_up.weight", s.embedding, s.feed_forward);
    matrix(p + "ffn_down.weight", s.feed_forward, s.embedding);
  }
  return plans;
}

void set_architecture_metadata(GgufWriter& writer, const SyntheticModelSpec& spec) {
  const ModelShape& s = spec.shape;
  const std::string a = s.architecture + ".";
  auto u32 = [](int64_t v) { return GgufValue::u32(static_cast<uint32_t>(v)); };
  writer.set("general.architecture", GgufValue::string(s.architecture));
  writer.set("general.name", GgufValue::string(s.name.empty() ? "synthetic model" : s.name));
  writer.set("general.file_type", GgufValue::u32(spec.format.llama_file_type()));
  if (tensor_type_traits(spec.format.base).block_elements > 1) {
    writer.set("general.quantization_version", GgufValue::u32(2));
  }
  writer.set(a + "vocab_size", u32(s.vocab));
  writer.set(a + "context_length", u32(s.context));
  writer.set(a + "embedding_length", u32(s.embedding));
  writer.set(a + "block_count", u32(s.layers));
  writer.set(a + "feed_forward_length", u32(s.feed_forward));
  writer.set(a + "attention.head_count", u32(s.heads));
  writer.set(a + "attention.head_count_kv", u32(s.kv_heads));
  writer.set(a + "attention.key_length", u32(s.resolved_head_size()));
  writer.set(a + "attention.value_length", u32(s.resolved_head_size()));
  if (s.architecture == "bert") {  // LayerNorm, bidirectional, mean pooling; no rotary embeddings
    writer.set(a + "attention.layer_norm_epsilon", GgufValue::f32(s.rms_epsilon));
    writer.set(a + "attention.causal", GgufValue::boolean(false));
    writer.set(a + "pooling_type", GgufValue::u32(1));
    writer.set("tokenizer.ggml.token_type_count", GgufValue::u32(2));
    return;
  }
  writer.set(a + "attention.layer_norm_rms_epsilon", GgufValue::f32(s.rms_epsilon));
  writer.set(a + "rope.dimension_count", u32(s.resolved_head_size()));
  writer.set(a + "rope.freq_base", GgufValue::f32(s.rope_base));
  if (s.rope_scaling != "none") {
    writer.set(a + "rope.scaling.type", GgufValue::string(s.rope_scaling));
    writer.set(a + "rope.scaling.factor", GgufValue::f32(s.rope_scaling_factor));
    writer.set(a + "rope.scaling.original_context_length", u32(s.rope_original_context));
  }
}

}  // namespace

SyntheticModelSummary write_synthetic_model(const SyntheticModelSpec& spec, const std::filesystem::path& path) {
  spec.shape.check();
  SyntheticModelSummary summary;
  const std::vector<TensorPlan> plans = plan_tensors(spec, summary.fallbacks);
  const size_t threads = spec.threads ? spec.threads : std::max(1u, std::thread::hardware_concurrency());

  GgufWriter writer;
  set_architecture_metadata(writer, spec);
  for (const auto& [key, value] : spec.extra_metadata) writer.set(key, value);
  for (const auto& plan : plans) {
    int64_t elements = 1;
    for (int64_t d : plan.shape) elements *= d;
    summary.parameters += static_cast<uint64_t>(elements);
    summary.tensor_types[plan.type]++;
    writer.add_tensor(plan.name, plan.type, plan.shape,
                      [&plan, seed = spec.weights.seed, threads](int64_t first, int64_t count, std::span<uint8_t> out) {
                        make_rows(plan, seed, threads, first, count, out);
                      });
  }
  writer.write(path);
  summary.file_bytes = std::filesystem::file_size(path);
  return summary;
}

std::vector<std::pair<std::string, GgufValue>> tokenizer_metadata(const GgufFile& file) {
  std::vector<std::pair<std::string, GgufValue>> out;
  for (const auto& [key, value] : file.metadata()) {
    if (key.starts_with("tokenizer.")) out.emplace_back(key, value);
  }
  return out;
}

int64_t tokenizer_token_count(const GgufFile& file) {
  const GgufValue* tokens = file.find("tokenizer.ggml.tokens");
  if (!tokens || tokens->type != GgufType::Array) {
    throw Error(fmt::format("{}: has no tokenizer.ggml.tokens array; give a GGUF file with a vocabulary (for example "
                            "a vocab-only file such as ggml-vocab-gpt-2.gguf)",
                            file.source_name()));
  }
  return static_cast<int64_t>(tokens->as_array().items.size());
}

}  // namespace frugal
