#include "support/model_builder.h"
#include "support/test_paths.h"

#include <random>
#include <vector>

#include "frugal/gguf.h"
#include "frugal/synth.h"

namespace frugal::test {

std::filesystem::path write_random_model(const RandomModelSpec& s, const std::filesystem::path& path) {
  SyntheticModelSpec spec;
  ModelShape& shape = spec.shape;
  shape.name = "random test model";
  shape.architecture = s.architecture;
  shape.vocab = s.vocab;
  shape.embedding = s.embedding;
  shape.layers = s.layers;
  shape.heads = s.heads;
  shape.kv_heads = s.kv_heads;
  shape.head_size = s.head_size;
  shape.feed_forward = s.feed_forward;
  shape.context = s.context;
  shape.rms_epsilon = 1e-6f;
  shape.rope_base = s.rope_base;
  shape.rope_scaling = s.rope_scaling;
  shape.rope_scaling_factor = s.rope_scaling_factor;
  shape.rope_original_context = s.rope_original_context;
  shape.rope_frequency_factors = s.rope_frequency_factors;
  shape.tied_embeddings = s.tied_embeddings;
  shape.qkv_bias = s.qkv_bias;
  shape.qk_norm = s.qk_norm;
  spec.format = WeightFormat::pure(s.matrix_type);
  // Larger spreads than real models so that every weight matters to the
  // logits the tests compare.
  spec.weights = {.seed = s.seed, .matrix_std = s.weight_scale, .norm_spread = 0.2f, .bias_spread = 0.5f};
  spec.threads = 1;
  write_synthetic_model(spec, path);
  return path;
}

std::filesystem::path write_random_lora(const std::filesystem::path& path, const std::filesystem::path& base,
                                        const std::vector<std::string>& targets, int64_t rank, float alpha,
                                        uint32_t seed, float spread) {
  const GgufFile model = GgufFile::open(base);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, spread);
  GgufWriter writer;
  writer.set("general.architecture", GgufValue::string(model.get_string("general.architecture")));
  writer.set("general.type", GgufValue::string("adapter"));
  writer.set("adapter.type", GgufValue::string("lora"));
  writer.set("adapter.lora.alpha", GgufValue::f32(alpha));
  std::vector<std::vector<float>> storage;  // alive until written
  for (const std::string& target : targets) {
    const GgufTensor& weight = model.require_tensor(target);
    const int64_t cols = weight.shape[0], rows = weight.shape[1];
    for (const auto& [suffix, shape] : {std::pair{".lora_a", std::vector<int64_t>{cols, rank}},
                                        std::pair{".lora_b", std::vector<int64_t>{rank, rows}}}) {
      storage.emplace_back(static_cast<size_t>(shape[0] * shape[1]));
      for (float& x : storage.back()) x = normal(rng);
      const auto& values = storage.back();
      writer.add_tensor(target + suffix, TensorType::F32, shape,
                        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(values.data()),
                                                 values.size() * sizeof(float)));
    }
  }
  writer.write(path);
  return path;
}

std::filesystem::path write_random_bert(const std::filesystem::path& path, TensorType matrix_type, int64_t embedding,
                                        int64_t layers, int64_t heads, int64_t context) {
  SyntheticModelSpec spec;
  spec.shape.architecture = "bert";
  spec.shape.embedding = embedding;
  spec.shape.layers = layers;
  spec.shape.heads = heads;
  spec.shape.kv_heads = heads;
  spec.shape.feed_forward = 2 * embedding;
  spec.shape.context = context;
  spec.format = WeightFormat::pure(matrix_type);
  const GgufFile vocab = GgufFile::open(shared_path("vocab/ggml-vocab-bert-bge.gguf"));
  spec.shape.vocab = tokenizer_token_count(vocab);
  spec.extra_metadata = tokenizer_metadata(vocab);
  write_synthetic_model(spec, path);
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
