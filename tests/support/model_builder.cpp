#include "support/model_builder.h"

#include <random>
#include <vector>

#include "frugal/gguf.h"
#include "frugal/quant.h"

namespace frugal::test {

namespace {

class TensorMaker {
 public:
  TensorMaker(GgufWriter& writer, uint32_t seed, float scale) : writer_(writer), rng_(seed), scale_(scale) {}

  void matrix(const std::string& name, int64_t cols, int64_t rows, TensorType type) {
    std::normal_distribution<float> normal(0.0f, scale_);
    std::vector<float> values(static_cast<size_t>(cols * rows));
    for (auto& v : values) v = normal(rng_);
    store(name, {cols, rows}, values, type);
  }
  void vector(const std::string& name, int64_t size, float center, float spread) {
    std::uniform_real_distribution<float> uniform(center - spread, center + spread);
    std::vector<float> values(static_cast<size_t>(size));
    for (auto& v : values) v = uniform(rng_);
    store(name, {size}, values, TensorType::F32);
  }

 private:
  void store(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& values, TensorType type) {
    std::vector<uint8_t> bytes(tensor_row_bytes(type, values.size()));
    quantize_row(type, values.data(), bytes.data(), values.size());
    writer_.add_tensor(name, type, std::move(shape), bytes);
  }
  GgufWriter& writer_;
  std::mt19937 rng_;
  float scale_;
};

}  // namespace

std::filesystem::path write_random_model(const RandomModelSpec& s, const std::filesystem::path& path) {
  GgufWriter writer;
  const std::string a = s.architecture + ".";
  const int64_t head_size = s.head_size ? s.head_size : s.embedding / s.heads;
  writer.set("general.architecture", GgufValue::string(s.architecture));
  writer.set("general.name", GgufValue::string("random test model"));
  writer.set(a + "context_length", GgufValue::u32(static_cast<uint32_t>(s.context)));
  writer.set(a + "embedding_length", GgufValue::u32(static_cast<uint32_t>(s.embedding)));
  writer.set(a + "block_count", GgufValue::u32(static_cast<uint32_t>(s.layers)));
  writer.set(a + "feed_forward_length", GgufValue::u32(static_cast<uint32_t>(s.feed_forward)));
  writer.set(a + "attention.head_count", GgufValue::u32(static_cast<uint32_t>(s.heads)));
  writer.set(a + "attention.head_count_kv", GgufValue::u32(static_cast<uint32_t>(s.kv_heads)));
  writer.set(a + "attention.key_length", GgufValue::u32(static_cast<uint32_t>(head_size)));
  writer.set(a + "attention.value_length", GgufValue::u32(static_cast<uint32_t>(head_size)));
  writer.set(a + "attention.layer_norm_rms_epsilon", GgufValue::f32(1e-6f));
  writer.set(a + "rope.freq_base", GgufValue::f32(s.rope_base));
  if (s.rope_scaling != "none") {
    writer.set(a + "rope.scaling.type", GgufValue::string(s.rope_scaling));
    writer.set(a + "rope.scaling.factor", GgufValue::f32(s.rope_scaling_factor));
    writer.set(a + "rope.scaling.original_context_length",
               GgufValue::u32(static_cast<uint32_t>(s.rope_original_context)));
  }
  TensorMaker make(writer, s.seed, s.weight_scale);
  const int64_t q_width = s.heads * head_size, kv_width = s.kv_heads * head_size;
  make.matrix("token_embd.weight", s.embedding, s.vocab, s.matrix_type);
  make.vector("output_norm.weight", s.embedding, 1.0f, 0.2f);
  if (!s.rope_frequency_factors.empty()) {
    writer.add_tensor("rope_freqs.weight", TensorType::F32, {static_cast<int64_t>(s.rope_frequency_factors.size())},
                      {reinterpret_cast<const uint8_t*>(s.rope_frequency_factors.data()),
                       s.rope_frequency_factors.size() * sizeof(float)});
  }
  if (!s.tied_embeddings) make.matrix("output.weight", s.embedding, s.vocab, s.matrix_type);
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    make.vector(p + "attn_norm.weight", s.embedding, 1.0f, 0.2f);
    make.matrix(p + "attn_q.weight", s.embedding, q_width, s.matrix_type);
    make.matrix(p + "attn_k.weight", s.embedding, kv_width, s.matrix_type);
    make.matrix(p + "attn_v.weight", s.embedding, kv_width, s.matrix_type);
    make.matrix(p + "attn_output.weight", q_width, s.embedding, s.matrix_type);
    if (s.qkv_bias) {
      make.vector(p + "attn_q.bias", q_width, 0.0f, 0.5f);
      make.vector(p + "attn_k.bias", kv_width, 0.0f, 0.5f);
      make.vector(p + "attn_v.bias", kv_width, 0.0f, 0.5f);
    }
    if (s.qk_norm) {
      make.vector(p + "attn_q_norm.weight", head_size, 1.0f, 0.3f);
      make.vector(p + "attn_k_norm.weight", head_size, 1.0f, 0.3f);
    }
    make.vector(p + "ffn_norm.weight", s.embedding, 1.0f, 0.2f);
    make.matrix(p + "ffn_gate.weight", s.embedding, s.feed_forward, s.matrix_type);
    make.matrix(p + "ffn_up.weight", s.embedding, s.feed_forward, s.matrix_type);
    make.matrix(p + "ffn_down.weight", s.feed_forward, s.embedding, s.matrix_type);
  }
  writer.write(path);
  return path;
}

}  // namespace frugal::test

namespace frugal::test {

void rewrite_gguf(const std::filesystem::path& source, const std::filesystem::path& destination,
                  const std::function<void(GgufEdit&)>& edit) {
  GgufEdit contents;
  {
    const GgufFile file = GgufFile::open(source);
    contents.metadata = file.metadata();
    for (const auto& t : file.tensors()) {
      contents.tensors.push_back({t.name, t.type, std::vector<int64_t>(t.shape.begin(), t.shape.begin() + t.n_dims),
                                  std::vector<uint8_t>(t.data, t.data + t.size_bytes)});
    }
  }
  edit(contents);
  GgufWriter writer;
  for (auto& [key, value] : contents.metadata) writer.set(key, value);
  for (auto& t : contents.tensors) writer.add_tensor(t.name, t.type, t.shape, t.data);
  writer.write(destination);
}

}  // namespace frugal::test
