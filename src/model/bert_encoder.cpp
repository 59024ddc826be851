// The BERT encoder as llama.cpp runs it (build_bert): token + token-type 0 +
// position embeddings and a LayerNorm; each block is bidirectional attention
// with biases, a residual and a LayerNorm, then a GELU feed-forward, a
// residual and a LayerNorm (post-norm); mean or [CLS] pooling at the end.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "frugal/encoder.h"
#include "frugal/error.h"
#include "model/pooling.h"
#include "model/weight_views.h"
#include "tensor/ops.h"
#include "tensor/thread_pool.h"

namespace frugal {

namespace {

struct EncoderLayer {
  WeightMatrix query, key, value, output, up, down;
  std::vector<float> query_bias, key_bias, value_bias, output_bias, up_bias, down_bias;
  std::vector<float> attention_norm, attention_norm_bias, output_norm, output_norm_bias;
};

// (x - mean) / sqrt(variance + epsilon) * weight + bias, in place, per row.
void layer_norm(float* rows, size_t count, const std::vector<float>& weight, const std::vector<float>& bias,
                float epsilon) {
  const size_t n = weight.size();
  for (size_t t = 0; t < count; ++t) {
    float* x = rows + t * n;
    double mean = 0, variance = 0;
    for (size_t i = 0; i < n; ++i) mean += x[i];
    mean /= static_cast<double>(n);
    for (size_t i = 0; i < n; ++i) variance += (x[i] - mean) * (x[i] - mean);
    const double scale = 1.0 / std::sqrt(variance / static_cast<double>(n) + epsilon);
    for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>((x[i] - mean) * scale) * weight[i] + bias[i];
  }
}

// GELU with the tanh approximation, which llama.cpp's ggml_gelu uses.
void gelu(float* x, size_t count) {
  constexpr float kSqrt2OverPi = 0.7978845608f;
  for (size_t i = 0; i < count; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(kSqrt2OverPi * (v + 0.044715f * v * v * v)));
  }
}

}  // namespace

struct EncoderModel::Impl {
  GgufFile file;
  EncoderConfig config;
  WeightMatrix token_embedding, token_types, positions;
  std::vector<float> embedding_norm, embedding_norm_bias;
  std::vector<EncoderLayer> layers;
  std::unique_ptr<ThreadPool> pool;

  explicit Impl(GgufFile f) : file(std::move(f)) {}

  void read_config() {
    const std::string a = "bert.";
    EncoderConfig& c = config;
    const auto number = [&](const std::string& key) { return file.get_int(a + key); };
    c.embedding_size = number("embedding_length");
    c.layer_count = number("block_count");
    c.head_count = number("attention.head_count");
    c.feed_forward_size = number("feed_forward_length");
    c.context = number("context_length");
    c.layer_norm_epsilon = static_cast<float>(file.get_float_or(a + "attention.layer_norm_epsilon", 1e-12));
    const int64_t pooling = file.get_int_or(a + "pooling_type", 1);
    if (pooling != 1 && pooling != 2) {
      throw UnsupportedError(fmt::format("{}: pooling type {} is not supported (frugal pools by mean, 1, or [CLS], 2)",
                                         file.source_name(), pooling));
    }
    c.pooling = pooling == 2 ? EncoderConfig::Pooling::Cls : EncoderConfig::Pooling::Mean;
    if (c.head_count <= 0 || c.embedding_size % c.head_count != 0) {
      throw FormatError(fmt::format("{}: embedding size {} is not a whole number of {} heads", file.source_name(),
                                    c.embedding_size, c.head_count));
    }
    // Every block's tensors must be there before anything is sized by the count.
    if (c.layer_count <= 0 || !file.find_tensor(fmt::format("blk.{}.attn_q.weight", c.layer_count - 1)) ||
        file.find_tensor(fmt::format("blk.{}.attn_q.weight", c.layer_count))) {
      throw FormatError(fmt::format("{}: bert.block_count is {}, which does not match the file's blocks",
                                    file.source_name(), c.layer_count));
    }
    const GgufTensor& embeddings = file.require_tensor("token_embd.weight");
    c.vocab_size = embeddings.n_dims == 2 ? embeddings.shape[1] : 0;
  }

  void load_weights() {
    const EncoderConfig& c = config;
    const int64_t e = c.embedding_size, f = c.feed_forward_size;
    token_embedding = matrix_view(file, "token_embd.weight", e, c.vocab_size);
    const GgufTensor& types = file.require_tensor("token_types.weight");
    token_types = matrix_view(file, "token_types.weight", e, types.n_dims == 2 ? types.shape[1] : 0);
    positions = matrix_view(file, "position_embd.weight", e, c.context);
    embedding_norm = vector_copy(file, "token_embd_norm.weight", e);
    embedding_norm_bias = vector_copy(file, "token_embd_norm.bias", e);
    layers.resize(static_cast<size_t>(c.layer_count));
    for (int64_t i = 0; i < c.layer_count; ++i) {
      const std::string p = fmt::format("blk.{}.", i);
      EncoderLayer& l = layers[static_cast<size_t>(i)];
      l.query = matrix_view(file, p + "attn_q.weight", e, e);
      l.key = matrix_view(file, p + "attn_k.weight", e, e);
      l.value = matrix_view(file, p + "attn_v.weight", e, e);
      l.output = matrix_view(file, p + "attn_output.weight", e, e);
      l.up = matrix_view(file, p + "ffn_up.weight", e, f);
      l.down = matrix_view(file, p + "ffn_down.weight", f, e);
      l.query_bias = vector_copy(file, p + "attn_q.bias", e);
      l.key_bias = vector_copy(file, p + "attn_k.bias", e);
      l.value_bias = vector_copy(file, p + "attn_v.bias", e);
      l.output_bias = vector_copy(file, p + "attn_output.bias", e);
      l.up_bias = vector_copy(file, p + "ffn_up.bias", f);
      l.down_bias = vector_copy(file, p + "ffn_down.bias", e);
      l.attention_norm = vector_copy(file, p + "attn_output_norm.weight", e);
      l.attention_norm_bias = vector_copy(file, p + "attn_output_norm.bias", e);
      l.output_norm = vector_copy(file, p + "layer_output_norm.weight", e);
      l.output_norm_bias = vector_copy(file, p + "layer_output_norm.bias", e);
    }
  }

  // softmax(q k^T / sqrt(d)) v over all tokens, head by head (heads in parallel).
  void attend(const float* q, const float* k, const float* v, size_t n, float* out) {
    const size_t e = static_cast<size_t>(config.embedding_size), heads = static_cast<size_t>(config.head_count);
    const size_t d = e / heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    pool->parallel_for(heads * n, [&](size_t begin, size_t end) {
      std::vector<float> scores(n);
      for (size_t item = begin; item < end; ++item) {
        const size_t h = item / n, t = item % n;
        const float* query = q + t * e + h * d;
        float top = -INFINITY;
        for (size_t s = 0; s < n; ++s) {
          float dot = 0;
          const float* key = k + s * e + h * d;
          for (size_t i = 0; i < d; ++i) dot += query[i] * key[i];
          scores[s] = dot * scale;
          top = std::max(top, scores[s]);
        }
        float sum = 0;
        for (size_t s = 0; s < n; ++s) sum += scores[s] = std::exp(scores[s] - top);
        float* result = out + t * e + h * d;
        std::fill_n(result, d, 0.0f);
        for (size_t s = 0; s < n; ++s) {
          const float weight = scores[s] / sum;
          const float* value = v + s * e + h * d;
          for (size_t i = 0; i < d; ++i) result[i] += weight * value[i];
        }
      }
    });
  }

  std::vector<float> run(std::span<const TokenId> tokens) {
    const EncoderConfig& c = config;
    const size_t n = tokens.size(), e = static_cast<size_t>(c.embedding_size);
    const size_t f = static_cast<size_t>(c.feed_forward_size);
    if (n == 0) throw Error("an embedding needs at least one token");
    if (static_cast<int64_t>(n) > c.context) {
      throw Error(fmt::format("{} tokens are more than this encoder's {} positions", n, c.context));
    }
    std::vector<float> x(n * e), row(e), q(n * e), k(n * e), v(n * e), attention(n * e), projected(n * e), up(n * f);
    for (size_t t = 0; t < n; ++t) {
      if (tokens[t] < 0 || tokens[t] >= c.vocab_size) {
        throw Error(fmt::format("token id {} is outside the vocabulary (size {})", tokens[t], c.vocab_size));
      }
      float* out = &x[t * e];
      dequantize_matrix_row(token_embedding, tokens[t], out);
      dequantize_matrix_row(token_types, 0, row.data());  // one segment: type 0
      add_in_place(out, row.data(), e);
      dequantize_matrix_row(positions, static_cast<int64_t>(t), row.data());
      add_in_place(out, row.data(), e);
    }
    layer_norm(x.data(), n, embedding_norm, embedding_norm_bias, c.layer_norm_epsilon);
    for (const EncoderLayer& l : layers) {
      const WeightMatrix* weights[3] = {&l.query, &l.key, &l.value};
      float* outs[3] = {q.data(), k.data(), v.data()};
      matmul_shared_input(weights, x.data(), n, outs, *pool);
      add_bias(q.data(), n, l.query_bias);
      add_bias(k.data(), n, l.key_bias);
      add_bias(v.data(), n, l.value_bias);
      attend(q.data(), k.data(), v.data(), n, attention.data());
      matmul(l.output, attention.data(), n, projected.data(), *pool);
      add_bias(projected.data(), n, l.output_bias);
      add_in_place(x.data(), projected.data(), n * e);
      layer_norm(x.data(), n, l.attention_norm, l.attention_norm_bias, c.layer_norm_epsilon);
      matmul(l.up, x.data(), n, up.data(), *pool);
      add_bias(up.data(), n, l.up_bias);
      gelu(up.data(), n * f);
      matmul(l.down, up.data(), n, projected.data(), *pool);
      add_bias(projected.data(), n, l.down_bias);
      add_in_place(x.data(), projected.data(), n * e);
      layer_norm(x.data(), n, l.output_norm, l.output_norm_bias, c.layer_norm_epsilon);
    }
    return x;
  }
};

bool is_encoder_model(const GgufFile& file) { return file.get_string_or("general.architecture", "") == "bert"; }

EncoderModel::EncoderModel() = default;
EncoderModel::~EncoderModel() = default;

std::unique_ptr<EncoderModel> EncoderModel::load(const std::filesystem::path& path, size_t threads) {
  std::unique_ptr<EncoderModel> model(new EncoderModel());
  model->impl_ = std::make_unique<Impl>(GgufFile::open(path));
  Impl& impl = *model->impl_;
  if (!is_encoder_model(impl.file)) {
    throw UnsupportedError(fmt::format("{}: architecture '{}' is not an encoder frugal runs (bert)",
                                       impl.file.source_name(), impl.file.get_string_or("general.architecture", "")));
  }
  impl.read_config();
  impl.load_weights();
  impl.pool = std::make_unique<ThreadPool>(threads ? threads : ThreadPool::default_thread_count());
  return model;
}

const GgufFile& EncoderModel::file() const { return impl_->file; }
const EncoderConfig& EncoderModel::config() const { return impl_->config; }

std::vector<float> EncoderModel::hidden_states(std::span<const TokenId> tokens) { return impl_->run(tokens); }

std::vector<float> EncoderModel::embed(std::span<const TokenId> tokens) {
  const std::vector<float> hidden = impl_->run(tokens);
  const size_t e = static_cast<size_t>(impl_->config.embedding_size);
  const size_t pooled_rows = impl_->config.pooling == EncoderConfig::Pooling::Cls ? 1 : tokens.size();
  return pooled_unit_vector(hidden.data(), pooled_rows, e);
}

}  // namespace frugal
