#include "server/openai_api.h"

#include <cmath>

#include <set>

#include <fmt/format.h>
#include "frugal/error.h"
#include "frugal/grammar.h"
#include "frugal/json_schema.h"

namespace frugal::server {

using nlohmann::json;

ApiError invalid_request(std::string message, std::string param) {
  return ApiError(400, "invalid_request_error", std::move(message), std::move(param));
}

json parse_json_object(const std::string& body) {
  json parsed;
  try {
    parsed = json::parse(body);
  } catch (const json::exception& e) {
    throw invalid_request(fmt::format("the body is not valid JSON: {}", e.what()));
  }
  if (!parsed.is_object()) throw invalid_request("the body must be a JSON object");
  // No API field nests deeper than this; deeper bodies are refused before
  // anything (a schema, a tool definition) walks them recursively.
  constexpr size_t kMaxDepth = 64;
  std::vector<std::pair<const json*, size_t>> pending = {{&parsed, 1}};
  while (!pending.empty()) {
    const auto [value, level] = pending.back();
    pending.pop_back();
    if (level > kMaxDepth) {
      throw invalid_request(fmt::format("the body nests objects and arrays more than {} deep", kMaxDepth));
    }
    if (value->is_structured()) {
      for (const auto& item : *value) pending.emplace_back(&item, level + 1);
    }
  }
  return parsed;
}

std::string string_field(const json& object, const char* key, const std::string& fallback) {
  if (!object.is_object() || !object.contains(key) || object[key].is_null()) return fallback;
  if (!object[key].is_string()) throw invalid_request(fmt::format("{} must be a string", key), key);
  return object[key].get<std::string>();
}

bool bool_field(const json& object, const char* key, bool fallback) {
  if (!object.is_object() || !object.contains(key) || object[key].is_null()) return fallback;
  if (!object[key].is_boolean()) throw invalid_request(fmt::format("{} must be true or false", key), key);
  return object[key].get<bool>();
}

std::string error_body(const ApiError& error) {
  const json body = {{"error",
                      {{"message", error.what()},
                       {"type", error.type},
                       {"param", error.param.empty() ? json(nullptr) : json(error.param)},
                       {"code", error.code.empty() ? json(nullptr) : json(error.code)}}}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

namespace {

template <typename T>
// `param`: the field's path for errors (empty: `key`).
T number(const json& body, const char* key, T low, T high, T fallback, std::string param = "") {
  if (param.empty()) param = key;
  if (!body.contains(key) || body[key].is_null()) return fallback;
  const json& v = body[key];
  if (!v.is_number()) throw invalid_request(fmt::format("{} must be a number", key), param);
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < static_cast<double>(low) || d > static_cast<double>(high)) {
    throw invalid_request(fmt::format("{} must be between {} and {}", key, low, high), param);
  }
  if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) throw invalid_request(fmt::format("{} must be an integer", key), param);
    return static_cast<T>(v.get<int64_t>());
  } else {
    return static_cast<T>(d);
  }
}

}  // namespace

namespace {

// Every request field is either honoured, accepted at a value that asks for
// nothing frugal lacks, or refused with a 400 naming it: a field that is
// silently ignored makes a client believe it got what it asked for.
void refuse_unknown_fields(const json& body) {
  static const std::set<std::string> kHonoured = {"model", "messages", "prompt", "max_tokens",
                                                  "max_completion_tokens", "temperature", "top_p", "n", "seed",
                                                  "stream", "stream_options", "stop", "beam_width", "logprobs",
                                                  "top_logprobs", "chat_template_kwargs", "reasoning_effort",
                                                  "thinking_budget", "reasoning_exit", "response_format",
                                                  "grammar", "tools", "tool_choice", "parallel_tool_calls", "lora"};
  // Bookkeeping for the client's side; they change nothing in an answer.
  static const std::set<std::string> kHarmless = {"user", "metadata", "store", "service_tier"};
  for (const auto& [key, value] : body.items()) {
    if (kHonoured.count(key) || kHarmless.count(key) || value.is_null()) continue;
    const bool is_zero = value.is_number() && value.get<double>() == 0;
    const bool is_false = value.is_boolean() && !value.get<bool>();
    if ((key == "frequency_penalty" || key == "presence_penalty") && is_zero) continue;
    if ((key == "logprobs" || key == "echo") && is_false) continue;
    if (key == "best_of" && value.is_number_integer() && value.get<int64_t>() == 1) continue;
    throw invalid_request(fmt::format("'{}' is not supported by this server; leave it out", key), key);
  }
}

}  // namespace

namespace {

// chat_template_kwargs.enable_thinking (what Qwen3's template reads),
// reasoning_effort, thinking_budget and reasoning_exit (frugal's).
void parse_thinking_fields(const json& body, bool chat, CompletionRequest& r) {
  for (const char* key : {"chat_template_kwargs", "reasoning_effort", "thinking_budget", "reasoning_exit"}) {
    if (!chat && body.contains(key) && !body[key].is_null()) {
      throw invalid_request(fmt::format("{} is a chat field; /v1/completions passes the prompt as it is", key), key);
    }
  }
  if (body.contains("chat_template_kwargs") && !body["chat_template_kwargs"].is_null()) {
    const json& kwargs = body["chat_template_kwargs"];
    if (!kwargs.is_object()) throw invalid_request("chat_template_kwargs must be an object", "chat_template_kwargs");
    for (const auto& [key, value] : kwargs.items()) {
      if (key != "enable_thinking") {
        throw invalid_request(fmt::format("chat_template_kwargs.{} is not supported; only enable_thinking is", key),
                              "chat_template_kwargs." + key);
      }
      if (!value.is_boolean()) {
        throw invalid_request("enable_thinking must be true or false", "chat_template_kwargs.enable_thinking");
      }
      r.enable_thinking = value.get<bool>();
    }
  }
  if (body.contains("reasoning_effort") && !body["reasoning_effort"].is_null()) {
    if (!body["reasoning_effort"].is_string()) {
      throw invalid_request("reasoning_effort must be none, low, medium or high", "reasoning_effort");
    }
    r.reasoning_effort = body["reasoning_effort"].get<std::string>();
    try {
      thinking_for_effort(*r.reasoning_effort);
    } catch (const Error& e) {
      throw invalid_request(e.what(), "reasoning_effort");
    }
  }
  if (body.contains("thinking_budget") && !body["thinking_budget"].is_null()) {
    r.thinking_budget = number<int32_t>(body, "thinking_budget", -1, 1 << 24, -1);
  }
  if (body.contains("reasoning_exit") && !body["reasoning_exit"].is_null()) {
    if (!body["reasoning_exit"].is_string()) throw invalid_request("reasoning_exit must be a string", "reasoning_exit");
    try {
      r.reasoning_exit = parse_early_exit(body["reasoning_exit"].get<std::string>());
    } catch (const Error& e) {
      throw invalid_request(e.what(), "reasoning_exit");
    }
  }
  if (r.beam_width > 1 && (r.enable_thinking || r.reasoning_effort || r.thinking_budget || r.reasoning_exit)) {
    throw invalid_request("thinking settings do not apply to beam search answers (beam_width > 1)", "beam_width");
  }
}

// response_format (OpenAI) and grammar (llama.cpp): the grammar the answer
// must follow, parsed here so that a bad one is a 400 naming the field.
void parse_structured_output(const json& body, std::string_view text, CompletionRequest& r) {
  const bool has_grammar = body.contains("grammar") && !body["grammar"].is_null();
  if (body.contains("response_format") && !body["response_format"].is_null()) {
    const json& format = body["response_format"];
    if (!format.is_object() || !format.contains("type") || !format["type"].is_string()) {
      throw invalid_request("response_format must be an object with a type: text, json_object or json_schema",
                            "response_format");
    }
    const std::string type = format["type"].get<std::string>();
    for (const auto& [key, value] : format.items()) {
      if (key != "type" && !(type == "json_schema" && key == "json_schema")) {
        throw invalid_request(fmt::format("response_format.{} is not supported", key), "response_format." + key);
      }
    }
    r.grammar_field = "response_format";
    if (type == "json_object") {
      r.grammar = Grammar::parse(json_object_gbnf());
    } else if (type == "json_schema") {
      if (!format.contains("json_schema") || !format["json_schema"].is_object()) {
        throw invalid_request("response_format json_schema needs a json_schema object with a schema",
                              "response_format.json_schema");
      }
      const json& wrapper = format["json_schema"];
      for (const auto& [key, value] : wrapper.items()) {
        if (key != "name" && key != "schema" && key != "strict" && key != "description") {
          throw invalid_request(fmt::format("response_format.json_schema.{} is not supported", key),
                                "response_format.json_schema." + key);
        }
      }
      if (!wrapper.contains("schema")) {
        throw invalid_request("response_format.json_schema has no schema", "response_format.json_schema.schema");
      }
      try {
        // Parsed again in order: the grammar writes properties as the schema lists them.
        const auto ordered = nlohmann::ordered_json::parse(text);
        r.grammar = Grammar::parse(json_schema_to_gbnf(ordered["response_format"]["json_schema"]["schema"]));
      } catch (const Error& e) {
        throw invalid_request(e.what(), "response_format.json_schema.schema");
      }
    } else if (type != "text") {
      throw invalid_request(fmt::format("response_format type '{}' is not one of text, json_object, json_schema", type),
                            "response_format.type");
    }
  }
  if (has_grammar) {
    if (r.grammar) throw invalid_request("give either response_format or grammar, not both", "grammar");
    r.grammar_field = "grammar";
    if (!body["grammar"].is_string()) throw invalid_request("grammar must be a GBNF text", "grammar");
    try {
      r.grammar = Grammar::parse(body["grammar"].get<std::string>());
    } catch (const Error& e) {
      throw invalid_request(e.what(), "grammar");
    }
  }
  if (r.grammar && r.beam_width > 1) {
    throw invalid_request("structured output is not available for beam search answers (beam_width > 1)",
                          "beam_width");
  }
}

}  // namespace

ThinkingSettings thinking_settings(const CompletionRequest& request, const ThinkingSettings& defaults,
                                   const std::optional<ThinkingFormat>& format) {
  const bool asks_off = request.enable_thinking == false || request.reasoning_effort == "none" ||
                        request.thinking_budget == 0;
  const bool asks_thinking = request.enable_thinking == true || (request.thinking_budget && *request.thinking_budget != 0) ||
                             (request.reasoning_exit && request.reasoning_exit->enabled()) ||
                             (request.reasoning_effort && *request.reasoning_effort != "none");
  if (!format) {
    if (!asks_thinking) return {};
    const char* field = request.enable_thinking == true ? "chat_template_kwargs.enable_thinking"
                        : request.reasoning_effort                    ? "reasoning_effort"
                        : request.thinking_budget                     ? "thinking_budget"
                                                                      : "reasoning_exit";
    throw invalid_request(fmt::format("this model does not think (its chat template has no <think> block); leave "
                                      "{} out",
                                      field),
                          field);
  }
  if (asks_off && (request.enable_thinking == true || (request.thinking_budget && *request.thinking_budget > 0) ||
                   (request.reasoning_exit && request.reasoning_exit->enabled()))) {
    throw invalid_request("the request turns thinking off and also sets how it thinks; choose one",
                          request.reasoning_exit ? "reasoning_exit" : "thinking_budget");
  }
  ThinkingSettings settings = defaults;
  if (request.reasoning_effort) {
    const ThinkingSettings effort = thinking_for_effort(*request.reasoning_effort);
    settings.enabled = effort.enabled;
    settings.budget = effort.budget;
  }
  if (request.enable_thinking) settings.enabled = request.enable_thinking;
  if (request.thinking_budget) settings.budget = *request.thinking_budget;
  if (request.reasoning_exit) settings.exit = *request.reasoning_exit;
  if (asks_off) {  // the server's defaults for how to think do not apply
    settings.enabled = false;
    settings.budget = -1;
    settings.exit = {};
  }
  return settings;
}

CompletionRequest parse_completion_request(std::string_view text, bool chat) {
  const json body = parse_json_object(std::string(text));
  CompletionRequest r;
  r.chat = chat;
  if (!body.contains("model") || !body["model"].is_string()) throw invalid_request("model must be a string", "model");
  r.model = body["model"].get<std::string>();
  if (chat) {
    if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty()) {
      throw invalid_request("messages must be a non-empty array", "messages");
    }
    size_t i = 0;
    for (const auto& m : body["messages"]) r.messages.push_back(parse_chat_message(m, i++));
  } else {
    if (!body.contains("prompt")) throw invalid_request("prompt is required", "prompt");
    const json& p = body["prompt"];
    if (p.is_string()) {
      r.prompt = p.get<std::string>();
    } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
      r.prompt = p[0].get<std::string>();
    } else {
      throw invalid_request("prompt must be a string (or an array of one string)", "prompt");
    }
  }
  // Left out: until the answer ends or the context is full, as OpenAI does.
  const char* length_key = body.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  r.max_tokens = number<int32_t>(body, length_key, 1, 1 << 20, -1);
  r.temperature = number<float>(body, "temperature", 0.0f, 2.0f, 1.0f);
  r.top_p = number<float>(body, "top_p", 0.0f, 1.0f, 1.0f);
  r.n = number<int>(body, "n", 1, 8, 1);
  if (body.contains("seed") && !body["seed"].is_null()) {
    if (!body["seed"].is_number_integer()) throw invalid_request("seed must be an integer", "seed");
    r.seed = static_cast<uint64_t>(body["seed"].get<int64_t>());
  }
  if (body.contains("stream") && !body["stream"].is_null()) {
    if (!body["stream"].is_boolean()) throw invalid_request("stream must be true or false", "stream");
    r.stream = body["stream"].get<bool>();
  }
  if (r.stream && r.n > 1) throw invalid_request("n > 1 is not supported with stream", "n");
  if (body.contains("stream_options") && !body["stream_options"].is_null()) {
    const json& o = body["stream_options"];
    if (!r.stream) throw invalid_request("stream_options needs stream: true", "stream_options");
    if (!o.is_object()) throw invalid_request("stream_options must be an object", "stream_options");
    for (const auto& [key, value] : o.items()) {
      if (key != "include_usage") {
        throw invalid_request(fmt::format("stream_options.{} is not supported", key), "stream_options." + key);
      }
      if (!value.is_boolean()) throw invalid_request("include_usage must be true or false", "stream_options");
      r.include_usage = value.get<bool>();
    }
  }
  r.beam_width = number<int>(body, "beam_width", 1, 16, 1);
  if (r.beam_width > 1 && r.stream) throw invalid_request("beam_width > 1 is not supported with stream", "beam_width");
  if (r.beam_width > 1 && r.n > r.beam_width) {
    throw invalid_request("n may not exceed beam_width: the choices are the n best beams", "n");
  }
  if (body.contains("stop") && !body["stop"].is_null()) {
    const json& s = body["stop"];
    if (s.is_string()) {
      r.stop.push_back(s.get<std::string>());
    } else if (s.is_array() && s.size() <= 4) {
      for (const auto& item : s) {
        if (!item.is_string()) throw invalid_request("stop must be a string or up to 4 strings", "stop");
        r.stop.push_back(item.get<std::string>());
      }
    } else {
      throw invalid_request("stop must be a string or up to 4 strings", "stop");
    }
  }
  parse_thinking_fields(body, chat, r);
  parse_structured_output(body, text, r);
  if (chat) {
    parse_tool_fields(body, text, r);
  } else {
    for (const char* key : {"tools", "tool_choice", "parallel_tool_calls"}) {
      if (body.contains(key) && !body[key].is_null()) {
        throw invalid_request(fmt::format("{} is a chat field; /v1/completions takes none", key), key);
      }
    }
  }
  if (chat) {
    // logprobs: true/false; top_logprobs 0..20 alternatives, only with it.
    if (body.contains("logprobs") && !body["logprobs"].is_null() && !body["logprobs"].is_boolean()) {
      throw invalid_request("logprobs must be true or false", "logprobs");
    }
    const bool wanted = body.value("logprobs", json(false)).is_boolean() && body.value("logprobs", false);
    const int top = number<int>(body, "top_logprobs", 0, 20, 0);
    if (!wanted && body.contains("top_logprobs") && !body["top_logprobs"].is_null()) {
      throw invalid_request("top_logprobs needs logprobs: true", "top_logprobs");
    }
    r.logprobs = wanted ? top : -1;
  } else {
    // logprobs: N alternatives, 0 to 5, as OpenAI's completions take.
    if (body.contains("top_logprobs") && !body["top_logprobs"].is_null()) {
      throw invalid_request("top_logprobs is a chat field; completions take logprobs: N", "top_logprobs");
    }
    if (body.contains("logprobs") && body["logprobs"].is_boolean()) {
      throw invalid_request("logprobs must be a number of alternatives from 0 to 5 for completions", "logprobs");
    }
    r.logprobs = number<int>(body, "logprobs", 0, 5, -1);
  }
  if (body.contains("lora") && !body["lora"].is_null()) {
    const json& list = body["lora"];
    if (!list.is_array()) throw invalid_request("lora must be an array of {id, scale}", "lora");
    r.lora.emplace();
    for (size_t i = 0; i < list.size(); ++i) {
      const json& item = list[i];
      const std::string where = fmt::format("lora[{}]", i);
      if (!item.is_object() || !item.contains("id")) {
        throw invalid_request("each lora item needs an adapter id (GET /lora-adapters lists them)", where + ".id");
      }
      const int id = number<int>(item, "id", 0, 1000, 0, where + ".id");
      const float scale = number<float>(item, "scale", -100.0f, 100.0f, 1.0f, where + ".scale");
      for (const auto& [key, value] : item.items()) {
        if (key != "id" && key != "scale") throw invalid_request(fmt::format("{}.{} is not supported", where, key), where);
      }
      for (const auto& [earlier, unused] : *r.lora) {
        if (earlier == id) throw invalid_request(fmt::format("adapter {} is listed twice", id), where + ".id");
      }
      r.lora->emplace_back(id, scale);
    }
  }
  if (r.logprobs >= 0 && r.may_call_tools()) {
    throw invalid_request("logprobs are not given for answers that may call tools; leave out logprobs or tools",
                          "logprobs");
  }
  if (r.logprobs >= 0 && r.beam_width > 1) {
    throw invalid_request("logprobs are not given for beam search answers (beam_width > 1)", "logprobs");
  }
  refuse_unknown_fields(body);
  return r;
}

json logprobs_json(const CompletionRequest& request, const Tokenizer& tokenizer,
                   std::span<const TokenLogprob> logprobs, size_t text_offset) {
  const auto piece = [&](TokenId token) { return tokenizer.token_to_piece(token, false); };
  if (request.chat) {
    const auto entry = [&](TokenId token, float logprob) {
      const std::string text = piece(token);
      json bytes = json::array();
      for (const unsigned char c : text) bytes.push_back(static_cast<int>(c));
      return json{{"token", text}, {"logprob", logprob}, {"bytes", bytes}};
    };
    json content = json::array();
    for (const TokenLogprob& t : logprobs) {
      json item = entry(t.token, t.logprob);
      json top = json::array();
      for (const auto& [token, logprob] : t.top) top.push_back(entry(token, logprob));
      item["top_logprobs"] = top;
      content.push_back(item);
    }
    return {{"content", content}, {"refusal", nullptr}};
  }
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(), offsets = json::array();
  for (const TokenLogprob& t : logprobs) {
    const std::string text = piece(t.token);
    tokens.push_back(text);
    token_logprobs.push_back(t.logprob);
    json alternatives = json::object();
    for (const auto& [token, logprob] : t.top) alternatives[piece(token)] = logprob;
    top.push_back(alternatives);
    offsets.push_back(text_offset);
    text_offset += text.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
}

namespace {

// {"id", "type": "function", "function": {"name", "arguments"}}, as a message and a stream delta carry it.
json tool_call_json(const ToolCall& call) {
  return {{"id", call.id}, {"type", "function"}, {"function", {{"name", call.name}, {"arguments", call.arguments}}}};
}

// A stream chunk's envelope around its choices.
json chunk_json(const CompletionRequest& request, const std::string& id, int64_t created, json choices) {
  return {{"id", id},
          {"object", request.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", request.model},
          {"choices", std::move(choices)}};
}

std::string server_sent_event(const json& chunk) {
  return "data: " + chunk.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

}  // namespace

json completion_response(const CompletionRequest& request, const std::string& id, int64_t created,
                         const std::vector<Choice>& choices, size_t prompt_tokens, size_t completion_tokens) {
  json list = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    json choice = {{"index", i}, {"finish_reason", choices[i].finish_reason}};
    if (request.chat) {
      choice["message"] = {{"role", "assistant"}, {"content", choices[i].text}};
      if (!choices[i].tool_calls.empty()) {
        if (choices[i].text.empty()) choice["message"]["content"] = nullptr;
        json calls = json::array();
        for (const ToolCall& call : choices[i].tool_calls) calls.push_back(tool_call_json(call));
        choice["message"]["tool_calls"] = calls;
      }
      if (choices[i].reasoning) choice["message"]["reasoning_content"] = *choices[i].reasoning;
    } else {
      choice["text"] = choices[i].text;
    }
    choice["logprobs"] = choices[i].logprobs;
    if (choices[i].context_shifts > 0) choice["context_shifts"] = choices[i].context_shifts;
    list.push_back(choice);
  }
  json body = {{"id", id},
               {"object", request.chat ? "chat.completion" : "text_completion"},
               {"created", created},
               {"model", request.model},
               {"choices", list},
               {"usage", {{"prompt_tokens", prompt_tokens},
                          {"completion_tokens", completion_tokens},
                          {"total_tokens", prompt_tokens + completion_tokens}}}};
  if (!choices.empty() && choices[0].reasoning) {
    size_t reasoning_tokens = 0;
    for (const Choice& c : choices) reasoning_tokens += c.reasoning_tokens;
    body["usage"]["completion_tokens_details"] = {{"reasoning_tokens", reasoning_tokens}};
  }
  return body;
}

json Timings::to_json() const {
  json out = {{"prompt_n", prompt_tokens},
          {"cached_n", cached_tokens},
          {"ttft_ms", first_token_seconds * 1000},
          {"predicted_n", completion_tokens},
          {"predicted_ms", generation_seconds * 1000},
          {"predicted_per_second",
           generation_seconds > 0 && completion_tokens > 1 ? (completion_tokens - 1) / generation_seconds : 0.0}};
  if (energy_joules >= 0) out["energy_joules"] = energy_joules;
  if (context_shifts > 0) out["context_shifts"] = context_shifts;
  if (probes > 0) {
    out["probes"] = probes;
    out["probe_tokens"] = probe_tokens;
  }
  return out;
}

json usage_json(size_t prompt_tokens, size_t completion_tokens, size_t cached_tokens) {
  json usage = {{"prompt_tokens", prompt_tokens},
                {"completion_tokens", completion_tokens},
                {"total_tokens", prompt_tokens + completion_tokens}};
  if (cached_tokens > 0) usage["prompt_tokens_details"] = {{"cached_tokens", cached_tokens}};
  return usage;
}

std::string usage_chunk(const CompletionRequest& request, const std::string& id, int64_t created,
                        const Timings& timings) {
  json chunk = chunk_json(request, id, created, json::array());
  chunk["usage"] = usage_json(timings.prompt_tokens, timings.completion_tokens, timings.cached_tokens);
  chunk["timings"] = timings.to_json();
  if (timings.reasoning_tokens) {
    chunk["usage"]["completion_tokens_details"] = {{"reasoning_tokens", *timings.reasoning_tokens}};
  }
  return server_sent_event(chunk);
}

std::string stream_chunk(const CompletionRequest& request, const std::string& id, int64_t created,
                         std::string_view text, std::string_view finish_reason, bool first, const json& logprobs,
                         bool thinking) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason.empty() ? json(nullptr) : json(finish_reason)}};
  if (!logprobs.is_null()) choice["logprobs"] = logprobs;
  if (request.chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (thinking) {
      delta["reasoning_content"] = text;
    } else if (!text.empty() || finish_reason.empty()) {
      delta["content"] = text;
    }
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  return server_sent_event(chunk_json(request, id, created, json::array({choice})));
}

std::string tool_calls_chunk(const CompletionRequest& request, const std::string& id, int64_t created,
                             const std::vector<ToolCall>& calls, size_t first_index, bool first) {
  json list = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    json call = tool_call_json(calls[i]);
    call["index"] = first_index + i;
    list.push_back(call);
  }
  json delta = {{"tool_calls", list}};
  if (first) delta["role"] = "assistant";
  return server_sent_event(
      chunk_json(request, id, created, json::array({{{"index", 0}, {"delta", delta}, {"finish_reason", nullptr}}})));
}

bool ended_by_length(StopReason reason) { return reason == StopReason::MaxTokens || reason == StopReason::ContextFull; }

std::string finish_reason(StopReason reason, bool made_tool_calls) {
  if (made_tool_calls) return "tool_calls";
  return ended_by_length(reason) ? "length" : "stop";
}

}  // namespace frugal::server
