#include "server/embedding_request.h"

#include <fmt/format.h>

#include "server/openai_api.h"

namespace frugal::server {

using json = nlohmann::json;

namespace {

std::string base64(const void* data, size_t size) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* bytes = static_cast<const uint8_t*>(data);
  std::string out;
  out.reserve((size + 2) / 3 * 4);
  for (size_t i = 0; i < size; i += 3) {
    const uint32_t chunk = (uint32_t{bytes[i]} << 16) | (i + 1 < size ? uint32_t{bytes[i + 1]} << 8 : 0) |
                           (i + 2 < size ? uint32_t{bytes[i + 2]} : 0);
    out += kAlphabet[(chunk >> 18) & 63];
    out += kAlphabet[(chunk >> 12) & 63];
    out += i + 1 < size ? kAlphabet[(chunk >> 6) & 63] : '=';
    out += i + 2 < size ? kAlphabet[chunk & 63] : '=';
  }
  return out;
}

}  // namespace

EmbeddingRequest parse_embedding_request(const json& body, const Tokenizer& tokenizer, int64_t vocab_size,
                                         int64_t context, bool truncate) {
  for (const auto& [key, value] : body.items()) {
    if (key != "model" && key != "input" && key != "encoding_format" && key != "user" && !value.is_null()) {
      throw invalid_request(fmt::format("'{}' is not supported by this server; leave it out", key), key);
    }
  }
  EmbeddingRequest request;
  request.model = body.value("model", json("")).is_string() ? body.value("model", "") : "";
  const std::string format = body.value("encoding_format", json("float")).is_string()
                                 ? body.value("encoding_format", "float")
                                 : "";
  if (format != "float" && format != "base64") {
    throw invalid_request("encoding_format must be \"float\" or \"base64\"", "encoding_format");
  }
  request.base64 = format == "base64";
  // input: a string, strings, token ids, or arrays of token ids.
  const json& input = body.contains("input") ? body["input"] : json();
  const auto add_tokens = [&](const json& ids) {
    std::vector<TokenId> tokens;
    for (const auto& id : ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= vocab_size) {
        throw invalid_request("token ids must be integers in the vocabulary", "input");
      }
      tokens.push_back(id.get<TokenId>());
    }
    request.inputs.push_back(std::move(tokens));
  };
  if (input.is_string()) {
    request.inputs.push_back(tokenizer.encode(input.get<std::string>(), true, false));
  } else if (input.is_array() && !input.empty() && input[0].is_number_integer()) {
    add_tokens(input);
  } else if (input.is_array() && !input.empty() && input.size() <= 2048) {
    for (const auto& item : input) {
      if (item.is_string()) {
        request.inputs.push_back(tokenizer.encode(item.get<std::string>(), true, false));
      } else if (item.is_array()) {
        add_tokens(item);
      } else {
        throw invalid_request("input items must be strings or arrays of token ids", "input");
      }
    }
  } else {
    throw invalid_request("input must be a string, up to 2048 strings, or token ids", "input");
  }
  for (auto& tokens : request.inputs) {
    if (tokens.empty()) throw invalid_request("an input gives no tokens", "input");
    if (truncate && static_cast<int64_t>(tokens.size()) > context) {
      const TokenId last = tokens.back();
      tokens.resize(static_cast<size_t>(context));
      // The token the vocabulary ends every input with ([SEP]), if any, stays last.
      const std::vector<TokenId> added = tokenizer.encode("", true, false);
      if (added.size() >= 2 && last == added.back()) tokens.back() = last;
    }
    if (static_cast<int64_t>(tokens.size()) > context) {
      throw ApiError(400, "invalid_request_error",
                     fmt::format("an input has {} tokens; this model's context holds {}", tokens.size(), context),
                     "input", "context_length_exceeded");
    }
    request.prompt_tokens += tokens.size();
  }
  return request;
}

json embedding_reply(const EmbeddingRequest& request, const std::vector<std::vector<float>>& vectors,
                     const std::string& model_name) {
  json data = json::array();
  for (size_t i = 0; i < vectors.size(); ++i) {
    json item = {{"object", "embedding"}, {"index", i}};
    if (request.base64) {
      item["embedding"] = base64(vectors[i].data(), vectors[i].size() * sizeof(float));
    } else {
      item["embedding"] = vectors[i];
    }
    data.push_back(item);
  }
  return {{"object", "list"},
          {"data", data},
          {"model", model_name},
          {"usage", {{"prompt_tokens", request.prompt_tokens}, {"total_tokens", request.prompt_tokens}}}};
}

bool ollama_embed_truncate(const json& body) {
  for (const auto& [key, value] : body.items()) {
    if (value.is_null() || key == "model" || key == "input" || key == "truncate" || key == "keep_alive") continue;
    if (key == "options" && value.is_object() && value.empty()) continue;
    throw invalid_request(key == "options" ? "options do not apply to embeddings; leave them out"
                                           : fmt::format("'{}' is not supported by this server; leave it out", key),
                          key);
  }
  return bool_field(body, "truncate", true);
}

json ollama_embed_reply(const std::string& model, const json& openai_reply, double seconds) {
  json vectors = json::array();
  for (const auto& item : openai_reply["data"]) vectors.push_back(item["embedding"]);
  return {{"model", model},
          {"embeddings", vectors},
          {"total_duration", static_cast<int64_t>(seconds * 1e9)},
          {"load_duration", 0},
          {"prompt_eval_count", openai_reply["usage"]["prompt_tokens"]}};
}

}  // namespace frugal::server
