// The OpenAI embeddings request and reply, shared by the generative server's
// /v1/embeddings and the encoder server (frugal serve --embedding).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frugal/tokenizer.h"

namespace frugal::server {

struct EmbeddingRequest {
  std::string model;
  std::vector<std::vector<TokenId>> inputs;  // tokenized, BOS/EOS as the vocabulary asks
  bool base64 = false;                       // encoding_format
  size_t prompt_tokens = 0;
};

// input: a string, up to 2048 strings, token ids or arrays of them; each at
// most `context` tokens, or with `truncate` (Ollama's default) cut to its
// first `context` tokens, a final end token ([SEP]) kept. Throws ApiError
// (400) naming the field.
EmbeddingRequest parse_embedding_request(const nlohmann::json& body, const Tokenizer& tokenizer, int64_t vocab_size,
                                         int64_t context, bool truncate = false);

// The API version Ollama's routes follow, and a model name without
// Ollama's ":latest".
inline constexpr const char* kOllamaVersion = "0.12.0";
inline std::string without_latest(std::string name) {
  if (name.ends_with(":latest")) name.resize(name.size() - 7);
  return name;
}

// Ollama's /api/embed body: refuses fields it does not take and options
// (none applies to an embedding); `truncate` is read (default true).
bool ollama_embed_truncate(const nlohmann::json& body);

// {"object": "list", "data": [...], "model", "usage"}: floats or base64 of
// little-endian float32.
nlohmann::json embedding_reply(const EmbeddingRequest& request, const std::vector<std::vector<float>>& vectors,
                               const std::string& model_name);

// Ollama's /api/embed reply from an OpenAI embeddings reply (floats):
// {model, embeddings, total_duration, load_duration, prompt_eval_count}.
nlohmann::json ollama_embed_reply(const std::string& model, const nlohmann::json& openai_reply, double seconds);

}  // namespace frugal::server
