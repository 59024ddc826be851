// Text encoders for embeddings: BERT-family GGUF files (architecture "bert",
// as llama.cpp's converter writes BGE, MiniLM, E5 and the like), read with
// their WordPiece vocabulary and turned into one vector per text.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "frugal/gguf.h"
#include "frugal/tokenizer.h"

namespace frugal {

struct EncoderConfig {
  int64_t vocab_size = 0, embedding_size = 0, layer_count = 0, head_count = 0, feed_forward_size = 0;
  int64_t context = 0;        // positions the file has embeddings for
  float layer_norm_epsilon = 1e-12f;
  enum class Pooling { Mean, Cls } pooling = Pooling::Mean;  // `bert.pooling_type` 1 or 2
};

// Whether `file` holds an encoder frugal can run (general.architecture "bert").
bool is_encoder_model(const GgufFile& file);

class EncoderModel {
 public:
  // Throws UnsupportedError for another architecture or pooling, FormatError
  // for a tensor of the wrong shape.
  static std::unique_ptr<EncoderModel> load(const std::filesystem::path& path, size_t threads = 0);
  ~EncoderModel();

  const GgufFile& file() const;
  const EncoderConfig& config() const;

  // The last layer's hidden states, [tokens x embedding] (every token sees
  // every other: attention is bidirectional). Throws Error for no tokens,
  // more than `context`, or an id outside the vocabulary.
  std::vector<float> hidden_states(std::span<const TokenId> tokens);
  // The text's vector: the hidden states pooled as the file says (mean of
  // the tokens, or the first, [CLS]) and scaled to length 1.
  std::vector<float> embed(std::span<const TokenId> tokens);

 private:
  EncoderModel();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace frugal
