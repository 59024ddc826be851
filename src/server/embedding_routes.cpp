// POST /v1/embeddings: the served model's embedding of each input (its final
// hidden states averaged over the tokens, length 1: Model::embed), in
// OpenAI's format, as floats or as base64 of little-endian float32 (what the
// openai client asks for by default).
#include <fmt/format.h>

#include "frugal/error.h"
#include "server/openai_api.h"
#include "server/server_impl.h"

namespace frugal {

namespace {

using json = nlohmann::json;

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

void Server::Impl::embeddings(const httplib::Request& http_request, httplib::Response& response) {
  check_key(http_request);
  const json body = server::parse_json_object(http_request.body);
  for (const auto& [key, value] : body.items()) {
    if (key != "model" && key != "input" && key != "encoding_format" && key != "user" && !value.is_null()) {
      throw server::invalid_request(fmt::format("'{}' is not supported by this server; leave it out", key), key);
    }
  }
  const std::string model = body.value("model", json("")).is_string() ? body.value("model", "") : "";
  if (model != options.model_name) {
    throw server::ApiError(404, "invalid_request_error",
                           fmt::format("the model '{}' does not embed here; use '{}'", model, options.model_name),
                           "model", "model_not_found");
  }
  const std::string format = body.value("encoding_format", json("float")).is_string()
                                 ? body.value("encoding_format", "float")
                                 : "";
  if (format != "float" && format != "base64") {
    throw server::invalid_request("encoding_format must be \"float\" or \"base64\"", "encoding_format");
  }
  // input: a string, strings, token ids, or arrays of token ids.
  std::vector<std::vector<TokenId>> inputs;
  const json& input = body.contains("input") ? body["input"] : json();
  const auto add_tokens = [&](const json& ids) {
    std::vector<TokenId> tokens;
    for (const auto& id : ids) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= model_vocab()) {
        throw server::invalid_request("token ids must be integers in the vocabulary", "input");
      }
      tokens.push_back(id.get<TokenId>());
    }
    inputs.push_back(std::move(tokens));
  };
  if (input.is_string()) {
    inputs.push_back(tokenizer.encode(input.get<std::string>(), true, false));
  } else if (input.is_array() && !input.empty() && input[0].is_number_integer()) {
    add_tokens(input);
  } else if (input.is_array() && !input.empty() && input.size() <= 2048) {
    for (const auto& item : input) {
      if (item.is_string()) {
        inputs.push_back(tokenizer.encode(item.get<std::string>(), true, false));
      } else if (item.is_array()) {
        add_tokens(item);
      } else {
        throw server::invalid_request("input items must be strings or arrays of token ids", "input");
      }
    }
  } else {
    throw server::invalid_request("input must be a string, up to 2048 strings, or token ids", "input");
  }
  size_t prompt_tokens = 0;
  for (const auto& tokens : inputs) {
    if (tokens.empty()) throw server::invalid_request("an input gives no tokens", "input");
    if (static_cast<int64_t>(tokens.size()) > options.context) {
      throw server::ApiError(400, "invalid_request_error",
                             fmt::format("an input has {} tokens; this model's context holds {}", tokens.size(),
                                         options.context),
                             "input", "context_length_exceeded");
    }
    prompt_tokens += tokens.size();
  }
  // On the scheduler thread, between batch steps: the model is not shared.
  std::vector<std::vector<float>> vectors;
  run_on_engine([&] {
    for (const auto& tokens : inputs) vectors.push_back(this->model.embed(tokens));
  });
  json data = json::array();
  for (size_t i = 0; i < vectors.size(); ++i) {
    json item = {{"object", "embedding"}, {"index", i}};
    if (format == "base64") {
      item["embedding"] = base64(vectors[i].data(), vectors[i].size() * sizeof(float));
    } else {
      item["embedding"] = vectors[i];
    }
    data.push_back(item);
  }
  const json reply = {{"object", "list"},
                      {"data", data},
                      {"model", options.model_name},
                      {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}};
  response.set_content(reply.dump(), "application/json");
  metrics.request("/v1/embeddings", 200);
}

}  // namespace frugal
