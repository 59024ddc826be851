// Writes small random-weight GGUF models of any shape for tests (through the
// library's synthetic model writer, include/frugal/synth.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "frugal/tensor_type.h"

namespace frugal::test {

struct RandomModelSpec {
  std::string architecture = "llama";  // llama, qwen2, qwen3
  int64_t vocab = 96;
  int64_t embedding = 64;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t kv_heads = 2;
  int64_t head_size = 0;  // 0: embedding / heads
  int64_t feed_forward = 96;
  int64_t context = 256;
  float rope_base = 10000.0f;
  std::string rope_scaling = "none";  // none, linear, yarn, llama3
  float rope_scaling_factor = 1.0f;
  int64_t rope_original_context = 64;
  std::vector<float> rope_frequency_factors;  // written as rope_freqs.weight when not empty
  bool tied_embeddings = true;
  bool qkv_bias = false;
  bool qk_norm = false;
  TensorType matrix_type = TensorType::F32;
  uint32_t seed = 1;
  float weight_scale = 0.3f;
};

// Writes the model and returns its path; weights ~ N(0, weight_scale^2),
// norms near 1.
std::filesystem::path write_random_model(const RandomModelSpec& spec, const std::filesystem::path& path);

// A random LoRA adapter (llama.cpp's GGUF format) of rank `rank` for the
// weights `targets` ("blk.0.attn_q.weight", ...) of the model at `base`,
// their shapes read from it; A and B ~ N(0, spread^2).
std::filesystem::path write_random_lora(const std::filesystem::path& path, const std::filesystem::path& base,
                                        const std::vector<std::string>& targets, int64_t rank, float alpha,
                                        uint32_t seed, float spread = 0.2f);

// A random BERT encoder (synth's default weights) with the BGE WordPiece
// vocabulary of ../shared/vocab: `embedding` wide, `heads` heads, a
// feed-forward of twice the width, `context` positions.
std::filesystem::path write_random_bert(const std::filesystem::path& path, TensorType matrix_type, int64_t embedding,
                                        int64_t layers, int64_t heads, int64_t context);

}  // namespace frugal::test

#include <functional>

#include "frugal/gguf.h"

namespace frugal::test {

// Copies a GGUF file, letting `edit` change the metadata and tensors first
// (to make files that are well-formed but wrong in one chosen way).
struct GgufEdit {
  std::vector<std::pair<std::string, GgufValue>> metadata;
  struct Tensor {
    std::string name;
    TensorType type;
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;
  };
  std::vector<Tensor> tensors;
};
void rewrite_gguf(const std::filesystem::path& source, const std::filesystem::path& destination,
                  const std::function<void(GgufEdit&)>& edit);

}  // namespace frugal::test
