// Loading: configuration, weight views (no copies of matrices) and checks of
// every tensor's shape against the configuration.
#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/quant.h"
#include "model/model_impl.h"
#include "model/weight_views.h"
#include "tensor/ops.h"

namespace frugal {

WeightMatrix matrix_view(const GgufFile& file, const std::string& name, int64_t cols, int64_t rows) {
  const GgufTensor& t = file.require_tensor(name);
  if (t.n_dims != 2 || t.shape[0] != cols || t.shape[1] != rows) {
    throw FormatError(fmt::format("{}: tensor '{}' has shape {}, expected [{}, {}]", file.source_name(), name,
                                  t.shape_string(), cols, rows));
  }
  // A weight must have a dot product (Q8_1 and Q8_K, say, are activation
  // formats only): fail here, naming the tensor, not in the first pass.
  try {
    activation_type(t.type);
  } catch (const UnsupportedError&) {
    throw UnsupportedError(fmt::format("{}: tensor '{}' is stored as {}, which frugal cannot use as a weight",
                                       file.source_name(), name, tensor_type_name(t.type)));
  }
  return {t.type, t.data, rows, cols, tensor_row_bytes(t.type, static_cast<size_t>(cols))};
}

void add_bias(float* rows, size_t count, const std::vector<float>& bias) {
  if (bias.empty()) return;
  for (size_t t = 0; t < count; ++t) add_in_place(rows + t * bias.size(), bias.data(), bias.size());
}

std::vector<float> vector_copy(const GgufFile& file, const std::string& name, int64_t size, bool required) {
  const GgufTensor* t = file.find_tensor(name);
  if (!t) {
    if (required) file.require_tensor(name);
    return {};
  }
  if (t->element_count() != size) {
    throw FormatError(fmt::format("{}: tensor '{}' has shape {}, expected {} values", file.source_name(), name,
                                  t->shape_string(), size));
  }
  std::vector<float> out(static_cast<size_t>(size));
  dequantize_row(t->type, t->data, out.data(), out.size());
  return out;
}

void Model::Impl::load_weights() {
  const ModelConfig& c = config;
  const int64_t q_width = c.head_count * c.head_size;
  const int64_t kv_width = c.kv_head_count * c.head_size;
  token_embedding = matrix_view(file, "token_embd.weight", c.embedding_size, c.vocab_size);
  output = c.tied_embeddings ? token_embedding : matrix_view(file, "output.weight", c.embedding_size, c.vocab_size);
  output_norm = vector_copy(file, "output_norm.weight", c.embedding_size);
  layers.resize(static_cast<size_t>(c.layer_count));
  for (int64_t i = 0; i < c.layer_count; ++i) {
    const std::string p = fmt::format("blk.{}.", i);
    LayerWeights& l = layers[static_cast<size_t>(i)];
    l.attention_norm = vector_copy(file, p + "attn_norm.weight", c.embedding_size);
    l.query = matrix_view(file, p + "attn_q.weight", c.embedding_size, q_width);
    l.key = matrix_view(file, p + "attn_k.weight", c.embedding_size, kv_width);
    l.value = matrix_view(file, p + "attn_v.weight", c.embedding_size, kv_width);
    l.attention_output = matrix_view(file, p + "attn_output.weight", q_width, c.embedding_size);
    l.query_bias = vector_copy(file, p + "attn_q.bias", q_width, false);
    l.key_bias = vector_copy(file, p + "attn_k.bias", kv_width, false);
    l.value_bias = vector_copy(file, p + "attn_v.bias", kv_width, false);
    if (c.qk_norm) {
      l.query_norm = vector_copy(file, p + "attn_q_norm.weight", c.head_size);
      l.key_norm = vector_copy(file, p + "attn_k_norm.weight", c.head_size);
    }
    l.feed_forward_norm = vector_copy(file, p + "ffn_norm.weight", c.embedding_size);
    l.gate = matrix_view(file, p + "ffn_gate.weight", c.embedding_size, c.feed_forward_size);
    l.up = matrix_view(file, p + "ffn_up.weight", c.embedding_size, c.feed_forward_size);
    l.down = matrix_view(file, p + "ffn_down.weight", c.feed_forward_size, c.embedding_size);
  }
  rope = std::make_unique<RotaryEmbedding>(c, vector_copy(file, "rope_freqs.weight", c.rope_dimensions / 2, false));
}

Model::Model() = default;
Model::~Model() = default;

size_t available_cpus() { return ThreadPool::available_cpus(); }

std::unique_ptr<Model> Model::load(const std::filesystem::path& path, const ModelOptions& options) {
  std::unique_ptr<Model> model(new Model());
  model->impl_ = std::make_unique<Impl>(GgufFile::open(path));
  model->impl_->config = ModelConfig::from_gguf(model->impl_->file);
  model->impl_->load_weights();
  model->impl_->load_loras(options.loras);
  const size_t threads = options.threads ? options.threads : ThreadPool::default_thread_count();
  model->impl_->pool = std::make_unique<ThreadPool>(threads, options.pin_threads);
  model->impl_->repack_weights(options.repacking);
  return model;
}

const ModelConfig& Model::config() const { return impl_->config; }
const GgufFile& Model::file() const { return impl_->file; }
size_t Model::thread_count() const { return impl_->pool->size(); }
const RepackingReport& Model::repacking() const { return impl_->repacking; }

std::vector<float> Model::forward(std::span<const TokenId> tokens, KvCache& cache, bool all_logits) {
  return impl_->forward(tokens, cache, all_logits);
}

}  // namespace frugal
