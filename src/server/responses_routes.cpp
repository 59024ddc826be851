// POST /v1/responses (OpenAI's Responses API, what the AI SDK's default
// provider and the openai client's responses.create call): text or message
// input, instructions, max_output_tokens, text.format (structured output),
// reasoning.effort; whole or streamed as Responses events. The request is
// translated into a chat completion request and answered by the same
// engine path.
#include <httplib.h>

#include <chrono>
#include <ctime>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "frugal/error.h"
#include "server/answer_stream.h"
#include "server/server_impl.h"

namespace frugal {

using server::ApiError;
using nlohmann::json;

namespace {

// Chat field names back into the Responses API's, for 400s.
std::string responses_param(const std::string& param) {
  const std::pair<const char*, const char*> names[] = {{"response_format.json_schema", "text.format"},
                                                       {"response_format", "text.format"},
                                                       {"messages", "input"},
                                                       {"max_tokens", "max_output_tokens"},
                                                       {"reasoning_effort", "reasoning.effort"}};
  for (const auto& [chat, responses] : names) {
    if (param.starts_with(chat)) return responses + param.substr(std::string_view(chat).size());
  }
  return param;
}

using ojson = nlohmann::ordered_json;  // a schema's properties keep their order

// A message's content: a string, or input_text / output_text parts.
std::string content_text(const ojson& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) throw server::invalid_request("content must be a string or a list of text parts", where);
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const ojson& part = content[i];
    const std::string type = part.is_object() ? part.value("type", "") : "";
    if ((type != "input_text" && type != "output_text") || !part.contains("text") || !part["text"].is_string()) {
      throw server::invalid_request(fmt::format("content part of type '{}' is not supported (only input_text)", type),
                                    fmt::format("{}[{}].type", where, i));
    }
    text += part["text"].get<std::string>();
  }
  return text;
}

// The chat completion request a Responses request amounts to.
ojson as_chat_request(const ojson& body) {
  if (!body.is_object()) throw server::invalid_request("the body must be a JSON object");
  static const std::set<std::string> kKnown = {"model", "input", "instructions", "max_output_tokens", "temperature",
                                               "top_p", "stream", "text", "reasoning", "store", "metadata", "user",
                                               "service_tier", "parallel_tool_calls", "tool_choice", "tools",
                                               "truncation", "include"};
  for (const auto& [key, value] : body.items()) {
    if (value.is_null()) continue;
    if (!kKnown.count(key)) {
      throw server::invalid_request(fmt::format("'{}' is not supported by this server; leave it out", key), key);
    }
  }
  // Values that ask for nothing frugal lacks.
  auto refuse_unless = [&](const char* key, bool harmless) {
    if (body.contains(key) && !body[key].is_null() && !harmless) {
      throw server::invalid_request(fmt::format("'{}' is not supported by this server at that value", key), key);
    }
  };
  refuse_unless("tools", body.value("tools", ojson::array()).is_array() && body.value("tools", ojson::array()).empty());
  refuse_unless("tool_choice", body.value("tool_choice", ojson("auto")) == "auto" ||
                                   body.value("tool_choice", ojson("auto")) == "none");
  refuse_unless("parallel_tool_calls", body.value("parallel_tool_calls", ojson(false)).is_boolean());
  refuse_unless("truncation", body.value("truncation", ojson("disabled")) == "disabled");
  refuse_unless("include", body.value("include", ojson::array()).is_array() && body.value("include", ojson::array()).empty());

  ojson chat = {{"model", body.value("model", ojson())}};
  ojson messages = ojson::array();
  if (body.contains("instructions") && !body["instructions"].is_null()) {
    if (!body["instructions"].is_string()) throw server::invalid_request("instructions must be a string", "instructions");
    messages.push_back({{"role", "system"}, {"content", body["instructions"]}});
  }
  const ojson input = body.value("input", ojson());
  if (input.is_string()) {
    messages.push_back({{"role", "user"}, {"content", input}});
  } else if (input.is_array()) {
    for (size_t i = 0; i < input.size(); ++i) {
      const ojson& item = input[i];
      const std::string where = fmt::format("input[{}]", i);
      if (!item.is_object() || item.value("type", "message") != "message" || !item.contains("role")) {
        throw server::invalid_request(
            fmt::format("input items must be messages ({{role, content}}); '{}' is not supported",
                        item.is_object() ? item.value("type", "") : item.dump()),
            where + ".type");
      }
      std::string role = item["role"].is_string() ? item["role"].get<std::string>() : "";
      if (role == "developer") role = "system";
      if (role != "user" && role != "system" && role != "assistant") {
        throw server::invalid_request(fmt::format("role '{}' is not supported", role), where + ".role");
      }
      messages.push_back({{"role", role}, {"content", content_text(item.value("content", ojson()), where + ".content")}});
    }
  } else {
    throw server::invalid_request("input must be a string or a list of messages", "input");
  }
  chat["messages"] = messages;
  for (const char* key : {"temperature", "top_p", "stream", "store", "metadata", "user", "service_tier"}) {
    if (body.contains(key)) chat[key] = body[key];
  }
  if (body.contains("max_output_tokens")) chat["max_tokens"] = body["max_output_tokens"];
  if (body.contains("reasoning") && !body["reasoning"].is_null()) {
    const ojson& reasoning = body["reasoning"];
    for (const auto& [key, value] : reasoning.items()) {
      if (key != "effort" && !(key == "summary" && value.is_null())) {
        throw server::invalid_request(fmt::format("reasoning.{} is not supported", key), "reasoning." + key);
      }
    }
    if (reasoning.contains("effort")) chat["reasoning_effort"] = reasoning["effort"];
  }
  if (body.contains("text") && !body["text"].is_null()) {
    const ojson& text = body["text"];
    for (const auto& [key, value] : text.items()) {
      if (key != "format") throw server::invalid_request(fmt::format("text.{} is not supported", key), "text." + key);
    }
    if (text.contains("format")) {
      ojson format = text["format"];
      if (format.is_object() && format.value("type", "") == "json_schema") {
        ojson schema = {{"name", format.value("name", "answer")}};
        for (const char* key : {"schema", "strict", "description"}) {
          if (format.contains(key)) schema[key] = format[key];
        }
        for (const auto& [key, value] : format.items()) {
          if (key != "type" && key != "name" && !schema.contains(key)) {
            throw server::invalid_request(fmt::format("text.format.{} is not supported", key), "text.format." + key);
          }
        }
        format = {{"type", "json_schema"}, {"json_schema", schema}};
      }
      chat["response_format"] = format;
    }
  }
  return chat;
}

struct ResponseIds {
  std::string response, message, reasoning;
};

json message_item(const ResponseIds& ids, const std::string& text, const std::string& status) {
  json content = json::array();
  if (status == "completed" || !text.empty()) {
    content.push_back({{"type", "output_text"}, {"text", text}, {"annotations", json::array()}});
  }
  return {{"type", "message"}, {"id", ids.message}, {"status", status}, {"role", "assistant"}, {"content", content}};
}

json response_object(const json& request, const ResponseIds& ids, int64_t created, const std::string& status,
                     const json& output, const json& usage, const json& incomplete) {
  json text = request.contains("text") ? request["text"] : json{{"format", {{"type", "text"}}}};
  return {{"id", ids.response},
          {"object", "response"},
          {"created_at", created},
          {"status", status},
          {"error", nullptr},
          {"incomplete_details", incomplete},
          {"instructions", request.value("instructions", json())},
          {"max_output_tokens", request.value("max_output_tokens", json())},
          {"model", request.value("model", json())},
          {"output", output},
          {"parallel_tool_calls", false},
          {"previous_response_id", nullptr},
          {"reasoning", request.value("reasoning", json{{"effort", nullptr}})},
          {"store", false},
          {"temperature", request.value("temperature", json(1.0))},
          {"text", text},
          {"tool_choice", "auto"},
          {"tools", json::array()},
          {"top_p", request.value("top_p", json(1.0))},
          {"truncation", "disabled"},
          {"usage", usage},
          {"metadata", request.value("metadata", json::object())}};
}

json usage_of(size_t prompt_tokens, const GenerationResult& result) {
  return {{"input_tokens", prompt_tokens},
          {"input_tokens_details", {{"cached_tokens", result.cached_tokens}}},
          {"output_tokens", result.tokens.size()},
          {"output_tokens_details", {{"reasoning_tokens", result.thinking_tokens}}},
          {"total_tokens", prompt_tokens + result.tokens.size()}};
}

json output_of(const ResponseIds& ids, const GenerationResult& result, bool thinks) {
  json output = json::array();
  if (thinks) {
    json summary = json::array();
    if (!result.thinking.empty()) summary.push_back({{"type", "summary_text"}, {"text", result.thinking}});
    output.push_back({{"type", "reasoning"}, {"id", ids.reasoning}, {"status", "completed"}, {"summary", summary}});
  }
  output.push_back(message_item(ids, result.text, "completed"));
  return output;
}

bool cut_short(const GenerationResult& result) { return server::ended_by_length(result.stop_reason); }

}  // namespace

void Server::Impl::responses(const httplib::Request& http_request, httplib::Response& response) {
  check_key(http_request);
  const json body = server::parse_json_object(http_request.body);
  server::CompletionRequest request;
  server::PreparedAnswer prepared;
  try {
    request = server::parse_completion_request(as_chat_request(ojson::parse(http_request.body)).dump(), true);
    prepared = prepare(request);
  } catch (const ApiError& e) {
    throw ApiError(e.status, e.type, e.what(), responses_param(e.param), e.code);
  }
  if (stopping) throw ApiError(503, "server_error", "the server is shutting down; retry later");
  const size_t limit = options.queue_limit + options.parallel;
  auto admission = std::make_shared<server::Admission>(in_flight, limit, 1);
  const size_t id_number = next_id.fetch_add(1);
  const ResponseIds ids{fmt::format("resp_{:016x}", id_number), fmt::format("msg_{:016x}", id_number),
                        fmt::format("rs_{:016x}", id_number)};
  const auto created = static_cast<int64_t>(std::time(nullptr));
  const bool thinks = prepared.generation.thinking.parse;
  const size_t prompt_tokens = prepared.prompt_tokens;
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  auto account = [this, prompt_tokens](const GenerationResult* result) {
    if (result) metrics.tokens(prompt_tokens, result->tokens.size());
  };
  GenerationJob job{prepared.prompt, prepared.generation};
  job.lora_scales = prepared.lora_scales;
  job.cancel = cancel;
  if (!request.stream) {
    job.on_finish = [account, admission](const GenerationResult* result) { account(result); };
    const GenerationResult result = server::answer_whole(*scheduler, std::move(job));
    const json incomplete = cut_short(result) ? json{{"reason", "max_output_tokens"}} : json();
    const json out = response_object(body, ids, created, cut_short(result) ? "incomplete" : "completed",
                                     output_of(ids, result, thinks), usage_of(prompt_tokens, result), incomplete);
    response.set_content(out.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
    metrics.request("/v1/responses", 200);
    return;
  }
  // Streamed: Responses events, each with its sequence number.
  struct State {
    size_t sequence = 0;
    std::string text, thought;
  };
  auto state = std::make_shared<State>();
  const size_t message_index = thinks ? 1 : 0;
  auto event = [state](json e) {
    e["sequence_number"] = state->sequence++;
    return fmt::format("event: {}\ndata: {}\n\n", e["type"].get<std::string>(),
                       e.dump(-1, ' ', false, json::error_handler_t::replace));
  };
  auto reasoning_item = [ids](const std::string& summary, const char* status) {
    json parts = json::array();
    if (!summary.empty()) parts.push_back({{"type", "summary_text"}, {"text", summary}});
    return json{{"type", "reasoning"}, {"id", ids.reasoning}, {"status", status}, {"summary", parts}};
  };
  server::AnswerStreamFormat format;
  format.content_type = "text/event-stream";
  format.start = [=] {
    const json pending = response_object(body, ids, created, "in_progress", json::array(), json(), json());
    // One event per statement: the order of evaluation of a + b is not defined.
    std::string out = event({{"type", "response.created"}, {"response", pending}});
    out += event({{"type", "response.in_progress"}, {"response", pending}});
    // The reasoning item (a thinking model) comes first, then the message.
    if (thinks) {
      out += event({{"type", "response.output_item.added"}, {"output_index", 0},
                    {"item", reasoning_item("", "in_progress")}});
    }
    out += event({{"type", "response.output_item.added"}, {"output_index", message_index},
                  {"item", message_item(ids, "", "in_progress")}});
    out += event({{"type", "response.content_part.added"}, {"item_id", ids.message}, {"output_index", message_index},
                  {"content_index", 0},
                  {"part", {{"type", "output_text"}, {"text", ""}, {"annotations", json::array()}}}});
    return out;
  };
  format.piece = [=](const std::string& piece, bool thinking) {
    if (thinking) {
      state->thought += piece;
      return event({{"type", "response.reasoning_summary_text.delta"}, {"item_id", ids.reasoning},
                    {"output_index", 0}, {"summary_index", 0}, {"delta", piece}});
    }
    state->text += piece;
    return event({{"type", "response.output_text.delta"}, {"item_id", ids.message}, {"output_index", message_index},
                  {"content_index", 0}, {"delta", piece}});
  };
  format.end = [=](const GenerationResult& result) {
    std::string out;
    if (thinks) {
      out += event({{"type", "response.output_item.done"}, {"output_index", 0},
                    {"item", reasoning_item(state->thought, "completed")}});
    }
    const json part = {{"type", "output_text"}, {"text", state->text}, {"annotations", json::array()}};
    out += event({{"type", "response.output_text.done"}, {"item_id", ids.message}, {"output_index", message_index},
                  {"content_index", 0}, {"text", state->text}});
    out += event({{"type", "response.content_part.done"}, {"item_id", ids.message}, {"output_index", message_index},
                  {"content_index", 0}, {"part", part}});
    out += event({{"type", "response.output_item.done"}, {"output_index", message_index},
                  {"item", message_item(ids, state->text, "completed")}});
    const bool incomplete = cut_short(result);
    const json done = response_object(body, ids, created, incomplete ? "incomplete" : "completed",
                                      output_of(ids, result, thinks), usage_of(prompt_tokens, result),
                                      incomplete ? json{{"reason", "max_output_tokens"}} : json());
    out += event({{"type", incomplete ? "response.incomplete" : "response.completed"}, {"response", done}});
    return out;
  };
  format.error = [=](const std::string& message) {
    return event({{"type", "error"}, {"code", "server_error"}, {"message", message}, {"param", nullptr}});
  };
  job.on_finish = [account, admission](const GenerationResult* result) { account(result); };
  server::stream_answer(*scheduler, std::move(job), std::move(format), response);
  metrics.request("/v1/responses", 200);
}

}  // namespace frugal
