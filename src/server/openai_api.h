// The OpenAI wire format: request parsing and validation, error bodies,
// responses and stream chunks. No HTTP and no model here.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "frugal/chat.h"

namespace frugal::server {

// An error as OpenAI reports it: HTTP status, type, optional param and code.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string type, std::string message, std::string param = "", std::string code = "")
      : std::runtime_error(std::move(message)), status(status), type(std::move(type)), param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type, param, code;
};

ApiError invalid_request(std::string message, std::string param = "");
std::string error_body(const ApiError& error);

struct CompletionRequest {
  bool chat = true;
  std::string model;
  std::vector<ChatMessage> messages;  // chat
  std::string prompt;                 // completions
  int32_t max_tokens = 256;
  float temperature = 1.0f;           // OpenAI's default
  float top_p = 1.0f;
  std::vector<std::string> stop;
  std::optional<uint64_t> seed;
  int n = 1;
  bool stream = false;
  // frugal's extension: > 1 answers with a beam search of that width (the n
  // best beams are the choices; temperature, top_p and seed do not apply).
  int beam_width = 1;
};

// Throws ApiError (400) naming the field for malformed JSON, wrong types and
// out-of-range values.
CompletionRequest parse_completion_request(std::string_view body, bool chat);

struct Choice {
  std::string text;
  std::string finish_reason;  // stop, length
};

nlohmann::json completion_response(const CompletionRequest& request, const std::string& id, int64_t created,
                                   const std::vector<Choice>& choices, size_t prompt_tokens,
                                   size_t completion_tokens);
// One server-sent-events chunk ("data: {...}\n\n"): a piece of text, or the
// end with its finish reason (text empty).
std::string stream_chunk(const CompletionRequest& request, const std::string& id, int64_t created,
                         std::string_view text, std::string_view finish_reason, bool first);

}  // namespace frugal::server
