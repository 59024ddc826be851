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
#include "frugal/generate.h"
#include "frugal/thinking.h"
#include "frugal/tokenizer.h"
#include "frugal/tools.h"

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
// A request body that must be a JSON object; ApiError 400 saying why not.
nlohmann::json parse_json_object(const std::string& body);
std::string error_body(const ApiError& error);
// A member of a request object: `fallback` when absent or null, ApiError
// 400 naming `key` when it has another type (never json's type_error).
std::string string_field(const nlohmann::json& object, const char* key, const std::string& fallback = "");
bool bool_field(const nlohmann::json& object, const char* key, bool fallback);

struct CompletionRequest {
  bool chat = true;
  std::string model;
  std::vector<ChatMessage> messages;  // chat
  std::string prompt;                 // completions
  int32_t max_tokens = -1;           // -1: until the answer ends or the context is full
  float temperature = 1.0f;           // OpenAI's default
  float top_p = 1.0f;
  std::vector<std::string> stop;
  std::optional<uint64_t> seed;
  int n = 1;
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage: a last chunk with usage
  // frugal's extension: > 1 answers with a beam search of that width (the n
  // best beams are the choices; temperature, top_p and seed do not apply).
  int beam_width = 1;
  // Log-probabilities of the answer's tokens with this many alternatives
  // each (chat: logprobs + top_logprobs; completions: logprobs N); -1: none.
  int32_t logprobs = -1;
  // Thinking, as the request asks (chat): chat_template_kwargs.
  // enable_thinking, reasoning_effort, thinking_budget, reasoning_exit.
  std::optional<bool> enable_thinking;
  std::optional<std::string> reasoning_effort;
  std::optional<int32_t> thinking_budget;
  std::optional<EarlyExit> reasoning_exit;
  // Structured output: response_format json_object / json_schema, or a GBNF
  // `grammar` (llama.cpp's field); nullptr: free text.
  std::shared_ptr<const Grammar> grammar;
  std::string grammar_field;  // the field that asked for it, for errors
  // Tools (chat): the functions offered, whether and which one the model
  // must call (tool_choice), and whether it may make several calls.
  std::vector<ToolDefinition> tools;
  enum class ToolChoice { Auto, None, Required } tool_choice = ToolChoice::Auto;
  std::string tool_choice_function;  // tool_choice {type: function}: the function it must call
  bool parallel_tool_calls = true;
  bool may_call_tools() const { return !tools.empty() && tool_choice != ToolChoice::None; }
  bool forces_tool_call() const { return tool_choice == ToolChoice::Required; }
  // llama-server's `lora`: [{id, scale}], the scales of the server's
  // adapters for this answer (those not listed: 0); nullopt: as loaded.
  std::optional<std::vector<std::pair<int, float>>> lora;
};

// One chat message: roles system, developer (as system), user, assistant
// (with tool_calls) and tool (a result, with tool_call_id). ApiError 400
// naming messages[index]'s field that is wrong.
ChatMessage parse_chat_message(const nlohmann::json& message, size_t index);
// tools, tool_choice and parallel_tool_calls; `text` is the body, parsed
// again to keep the definitions' keys in their order.
void parse_tool_fields(const nlohmann::json& body, std::string_view text, CompletionRequest& request);

// The server's thinking defaults with what the request asks on top; throws
// ApiError (400) naming the field for what contradicts itself or what a
// model that does not think (`format` nullopt) cannot do.
ThinkingSettings thinking_settings(const CompletionRequest& request, const ThinkingSettings& defaults,
                                   const std::optional<ThinkingFormat>& format);

// What Server::Impl::prepare makes of a request.
struct PreparedAnswer {
  std::vector<TokenId> prompt;
  GenerationOptions generation;
  bool knowledge = false;    // over a knowledge cache (MODEL@NAME)
  size_t prompt_tokens = 0;
  int64_t answer_tokens = 0;  // at most: max_tokens or what is left of the context
  // Set when the answer may hold tool calls, to be parsed out of its text.
  std::optional<ToolCallFormat> tool_calls;
  // The adapters' scales for this answer (GenerationJob::lora_scales);
  // empty: as loaded.
  std::vector<float> lora_scales;
};

// Throws ApiError (400) naming the field for malformed JSON, wrong types and
// out-of-range values.
CompletionRequest parse_completion_request(std::string_view body, bool chat);

struct Choice {
  std::string text;
  std::string finish_reason;  // stop, length
  // Times the context was shifted (ServerOptions::context_shift); a
  // frugal field, written only when not 0.
  size_t context_shifts = 0;
  nlohmann::json logprobs = nullptr;  // logprobs_json, or null when not asked for
  // A thinking model's thinking (message.reasoning_content) and its tokens
  // (usage.completion_tokens_details.reasoning_tokens).
  std::optional<std::string> reasoning{};
  size_t reasoning_tokens = 0;
  std::vector<ToolCall> tool_calls{};  // message.tool_calls (finish_reason tool_calls)
};

// The answer tokens' log-probabilities in the request's format: chat's
// {"content": [{token, logprob, bytes, top_logprobs}]} or completions'
// {tokens, token_logprobs, top_logprobs, text_offset} (offsets counted from
// `text_offset`, the characters already sent).
nlohmann::json logprobs_json(const CompletionRequest& request, const Tokenizer& tokenizer,
                             std::span<const TokenLogprob> logprobs, size_t text_offset = 0);

nlohmann::json completion_response(const CompletionRequest& request, const std::string& id, int64_t created,
                                   const std::vector<Choice>& choices, size_t prompt_tokens,
                                   size_t completion_tokens);
// How long an answer took, as llama.cpp's server reports it ("timings"):
// the web page shows these under each answer.
struct Timings {
  size_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
  double first_token_seconds = 0;  // from the request's arrival
  double generation_seconds = 0;   // from the first token to the last
  double energy_joules = -1;       // negative: not measured
  size_t context_shifts = 0;       // written only when not 0
  size_t probes = 0, probe_tokens = 0;  // early-exit probes (written only when not 0)
  std::optional<size_t> reasoning_tokens{};  // a thinking model's (usage_chunk's completion_tokens_details)
  nlohmann::json to_json() const;
};

// The usage object, with cached prompt tokens when there are any.
nlohmann::json usage_json(size_t prompt_tokens, size_t completion_tokens, size_t cached_tokens);

// The last chunk of a stream when stream_options.include_usage is set: no
// choices, the usage and the timings.
std::string usage_chunk(const CompletionRequest& request, const std::string& id, int64_t created,
                        const Timings& timings);

// One server-sent-events chunk ("data: {...}\n\n"): a piece of text, or the
// end with its finish reason (text empty).
std::string stream_chunk(const CompletionRequest& request, const std::string& id, int64_t created,
                         std::string_view text, std::string_view finish_reason, bool first,
                         const nlohmann::json& logprobs = nullptr, bool thinking = false);

// A streamed chunk with tool calls (delta.tool_calls), numbered from `first_index`.
std::string tool_calls_chunk(const CompletionRequest& request, const std::string& id, int64_t created,
                             const std::vector<ToolCall>& calls, size_t first_index, bool first);
// Whether an answer was cut short: by its token limit or a full context
// (OpenAI's "length", the Responses API's "incomplete", Ollama's "length").
bool ended_by_length(StopReason reason);
// The finish reason of an answer: "tool_calls" when it made calls, else
// "length" when cut short, else "stop".
std::string finish_reason(StopReason reason, bool made_tool_calls = false);

}  // namespace frugal::server
