// Ollama's API beside OpenAI's, for the many local apps that speak it:
// /api/chat and /api/generate (streamed as NDJSON by default), /api/embed,
// /api/tags, /api/show, /api/ps, /api/version. Requests are translated into
// OpenAI-style requests and answered by the same engine path; knowledge
// caches are models (MODEL@NAME) here too. Names may carry Ollama's ":latest".
#include <httplib.h>

#include <chrono>
#include <ctime>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "frugal/error.h"
#include "frugal/tools.h"
#include "server/answer_stream.h"
#include "server/embedding_request.h"
#include "server/server_impl.h"

namespace frugal {

using server::ApiError;
using nlohmann::json;

namespace {

std::string iso_now() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

// Ollama's options and format as OpenAI fields of `chat` (a chat or
// completion request body).
void translate_options(const nlohmann::ordered_json& body, nlohmann::ordered_json& chat) {
  if (body.contains("format") && !body["format"].is_null()) {
    const nlohmann::ordered_json& format = body["format"];
    if (format == "json") {
      chat["response_format"] = {{"type", "json_object"}};
    } else if (format.is_object()) {
      chat["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "format"}, {"schema", format}}}};
    } else {
      throw server::invalid_request("format must be \"json\" or a JSON schema", "format");
    }
  }
  if (body.contains("options") && !body["options"].is_null()) {
    const nlohmann::ordered_json& options = body["options"];
    if (!options.is_object()) throw server::invalid_request("options must be an object", "options");
    for (const auto& [key, value] : options.items()) {
      if (key == "temperature" || key == "top_p" || key == "seed" || key == "stop") {
        chat[key] = value;
      } else if (key == "num_predict") {
        if (!(value.is_number_integer() && value.get<int64_t>() < 0)) chat["max_tokens"] = value;  // -1: no limit
      } else if (key == "num_ctx" || key == "num_thread" || key == "num_gpu" || key == "num_batch" ||
                 key == "use_mmap") {
        // Set when the server starts (-c, -t); a request cannot change them,
        // and asking is harmless: the answer is the same.
      } else if ((key == "top_k" && value == 0) || (key == "repeat_penalty" && value == 1) ||
                 (key == "min_p" && value == 0) || (key == "presence_penalty" && value == 0) ||
                 (key == "frequency_penalty" && value == 0)) {
        // Values that turn the feature off: what frugal's server does anyway.
      } else {
        throw server::invalid_request(fmt::format("options.{} is not supported by this server", key),
                                      "options." + key);
      }
    }
  }
  if (body.contains("think") && !body["think"].is_null()) {
    if (!body["think"].is_boolean()) throw server::invalid_request("think must be true or false", "think");
    chat["chat_template_kwargs"] = {{"enable_thinking", body["think"]}};
  }
}

void refuse_unknown(const json& body, std::initializer_list<const char*> known) {
  for (const auto& [key, value] : body.items()) {
    if (value.is_null()) continue;
    bool ok = key == "keep_alive";  // models stay loaded for the server's life
    for (const char* k : known) ok = ok || key == k;
    if (!ok) throw server::invalid_request(fmt::format("'{}' is not supported by this server; leave it out", key), key);
  }
}

// Ollama's chat messages as OpenAI's: its calls carry no ids and their
// arguments are objects; its tool results name no call.
nlohmann::ordered_json ollama_messages_as_openai(const json& messages) {
  if (!messages.is_array()) throw server::invalid_request("messages must be an array", "messages");
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  size_t calls = 0;
  for (const auto& m : messages) {
    if (!m.is_object()) throw server::invalid_request("each message must be an object", "messages");
    if (m.contains("images") && !m["images"].empty()) throw server::invalid_request("images are not supported", "messages");
    nlohmann::ordered_json message = {{"role", server::string_field(m, "role")},
                                       {"content", server::string_field(m, "content")}};
    if (m.contains("tool_calls") && m["tool_calls"].is_array()) {
      nlohmann::ordered_json list = nlohmann::ordered_json::array();
      for (const auto& call : m["tool_calls"]) {
        if (!call.is_object() || !call.contains("function") || !call["function"].is_object()) {
          throw server::invalid_request("each tool call must be {function: {name, arguments}}", "messages");
        }
        const json& function = call["function"];
        const json arguments = function.contains("arguments") ? function["arguments"] : json::object();
        list.push_back({{"id", fmt::format("call_{}", calls++)},
                        {"type", "function"},
                        {"function", {{"name", server::string_field(function, "name")},
                                      {"arguments", arguments.is_string() ? arguments.get<std::string>()
                                                                          : arguments.dump()}}}});
      }
      message["tool_calls"] = list;
    }
    if (message["role"] == "tool") message["tool_call_id"] = fmt::format("call_{}", calls ? calls - 1 : 0);
    out.push_back(message);
  }
  return out;
}

// Calls as Ollama writes them: {function: {name, arguments: {...}}}.
json ollama_tool_calls(const std::vector<ToolCall>& calls) {
  json list = json::array();
  for (const ToolCall& call : calls) {
    list.push_back({{"function", {{"name", call.name}, {"arguments", json::parse(call.arguments)}}}});
  }
  return list;
}

int64_t nanoseconds(double seconds) { return static_cast<int64_t>(seconds * 1e9); }

// The statistics Ollama puts on its last object.
json done_fields(const GenerationResult& result, size_t prompt_tokens, double total_seconds) {
  return {{"done", true},
          {"done_reason", server::ended_by_length(result.stop_reason) ? "length" : "stop"},
          {"total_duration", nanoseconds(total_seconds)},
          {"load_duration", 0},
          {"prompt_eval_count", prompt_tokens},
          {"prompt_eval_duration", nanoseconds(result.prompt_seconds)},
          {"eval_count", result.tokens.size()},
          {"eval_duration", nanoseconds(result.generation_seconds)}};
}

}  // namespace

json Server::Impl::ollama_model_entry(const std::string& name) const {
  const auto& c = model.config();
  std::string quantization = "F32";
  for (const GgufTensor& t : model.file().tensors()) {
    if (t.name == "blk.0.attn_q.weight") quantization = std::string(tensor_type_name(t.type));
  }
  const std::string family = model.file().get_string_or("general.architecture", "llama");
  uint64_t parameters = 0;
  for (const GgufTensor& t : model.file().tensors()) parameters += static_cast<uint64_t>(t.element_count());
  return {{"name", name + ":latest"},
          {"model", name + ":latest"},
          {"modified_at", "2026-01-01T00:00:00Z"},
          {"size", model.file().file_size()},
          {"digest", fmt::format("{:016x}", std::hash<std::string>{}(name))},
          {"details",
           {{"parent_model", ""},
            {"format", "gguf"},
            {"family", family},
            {"families", {family}},
            {"parameter_size", fmt::format("{:.1f}M", static_cast<double>(parameters) / 1e6)},
            {"quantization_level", quantization}}},
          {"context_length", c.training_context}};
}

void Server::Impl::add_ollama_routes() {
  http.Get("/api/version", guarded("/api/version", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(json{{"version", server::kOllamaVersion}}.dump(), "application/json");
  }));
  http.Get("/api/tags", guarded("/api/tags", [this](const httplib::Request& request, httplib::Response& response) {
    check_key(request);
    json list = json::array({ollama_model_entry(options.model_name)});
    for (const auto& [name, tokens] : knowledge_listing()) {
      list.push_back(ollama_model_entry(options.model_name + "@" + name));
    }
    response.set_content(json{{"models", list}}.dump(), "application/json");
  }));
  http.Get("/api/ps", guarded("/api/ps", [this](const httplib::Request& request, httplib::Response& response) {
    check_key(request);
    json entry = ollama_model_entry(options.model_name);
    entry["expires_at"] = "2999-01-01T00:00:00Z";  // loaded for the server's life
    entry["size_vram"] = 0;
    response.set_content(json{{"models", json::array({entry})}}.dump(), "application/json");
  }));
  http.Post("/api/show", guarded("/api/show", [this](const httplib::Request& request, httplib::Response& response) {
    check_key(request);
    const json body = server::parse_json_object(request.body);
    refuse_unknown(body, {"model", "name", "verbose"});
    const std::string name =
        server::without_latest(server::string_field(body, "model", server::string_field(body, "name")));
    if (name != options.model_name && !name.starts_with(options.model_name + "@")) {
      throw ApiError(404, "not_found_error", fmt::format("model '{}' not found", name), "model");
    }
    json entry = ollama_model_entry(name);
    std::vector<std::string> capabilities = {"completion"};
    if (thinking_format) capabilities.push_back("thinking");
    const json shown = {{"modelfile", ""},
                        {"parameters", ""},
                        {"template", model.file().get_string_or("tokenizer.chat_template", "")},
                        {"details", entry["details"]},
                        {"model_info",
                         {{"general.architecture", entry["details"]["family"]},
                          {entry["details"]["family"].get<std::string>() + ".context_length",
                           model.config().training_context},
                          {entry["details"]["family"].get<std::string>() + ".embedding_length",
                           model.config().embedding_size}}},
                        {"capabilities", capabilities}};
    response.set_content(shown.dump(), "application/json");
  }));
  http.Post("/api/chat", guarded("/api/chat", [this](const httplib::Request& request, httplib::Response& response) {
    ollama_generate(request, response, true);
  }));
  http.Post("/api/generate", guarded("/api/generate", [this](const httplib::Request& request,
                                                             httplib::Response& response) {
    ollama_generate(request, response, false);
  }));
  http.Post("/api/embed", guarded("/api/embed", [this](const httplib::Request& request, httplib::Response& response) {
    check_key(request);
    const json body = server::parse_json_object(request.body);
    const bool truncate = server::ollama_embed_truncate(body);
    const auto start = std::chrono::steady_clock::now();
    // The OpenAI route computes them; its answer is reshaped.
    const json computed = embed({{"model", server::without_latest(server::string_field(body, "model"))},
                                 {"input", body.contains("input") ? body["input"] : json()}},
                                truncate);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    response.set_content(server::ollama_embed_reply(server::string_field(body, "model"), computed, seconds).dump(),
                         "application/json");
  }));
}

void Server::Impl::ollama_generate(const httplib::Request& http_request, httplib::Response& response, bool chat) {
  const auto start = std::chrono::steady_clock::now();
  check_key(http_request);
  const json body = server::parse_json_object(http_request.body);
  // In order: a schema in `format` keeps the order of its properties.
  const auto ordered = nlohmann::ordered_json::parse(http_request.body);
  nlohmann::ordered_json openai = {{"model", server::without_latest(server::string_field(body, "model"))}};
  if (chat) {
    refuse_unknown(body, {"model", "messages", "stream", "format", "options", "think", "tools"});
    openai["messages"] = ollama_messages_as_openai(body.contains("messages") ? body["messages"] : json::array());
    if (ordered.contains("tools") && !(ordered["tools"].is_array() && ordered["tools"].empty())) {
      openai["tools"] = ordered["tools"];  // the same {type: "function", function: {...}} shape
    }
  } else {
    refuse_unknown(body, {"model", "prompt", "system", "stream", "format", "options", "think", "raw", "suffix"});
    if (body.contains("suffix") && body["suffix"] != "") throw server::invalid_request("suffix is not supported", "suffix");
    const bool raw = server::bool_field(body, "raw", false);
    // Not raw: the prompt goes through the chat template, as Ollama does.
    if (raw) {
      openai["prompt"] = server::string_field(body, "prompt");
    } else {
      json messages = json::array();
      if (body.contains("system")) messages.push_back({{"role", "system"}, {"content", body["system"]}});
      messages.push_back({{"role", "user"}, {"content", server::string_field(body, "prompt")}});
      openai["messages"] = nlohmann::ordered_json::parse(messages.dump());
    }
  }
  translate_options(ordered, openai);
  const bool as_chat = openai.contains("messages");
  server::CompletionRequest request = server::parse_completion_request(openai.dump(), as_chat);
  if (request.model != options.model_name && !request.model.starts_with(options.model_name + "@") &&
      !request.model.starts_with(options.model_name + "+")) {
    throw ApiError(404, "not_found_error", fmt::format("model '{}' not found", request.model), "model");
  }
  server::PreparedAnswer prepared = prepare(request);
  if (stopping) throw ApiError(503, "server_error", "the server is shutting down; retry later");
  const bool stream = server::bool_field(body, "stream", true);  // Ollama streams unless told not to
  auto admission = std::make_shared<server::Admission>(in_flight, options.queue_limit + options.parallel, 1);
  const size_t prompt_tokens = prepared.prompt_tokens;
  const std::string model_name = server::string_field(body, "model");
  GenerationJob job{prepared.prompt, prepared.generation};
  job.lora_scales = prepared.lora_scales;
  job.on_finish = [this, admission, prompt_tokens](const GenerationResult* result) {
    if (result) metrics.tokens(prompt_tokens, result->tokens.size());
  };
  const std::string endpoint = chat ? "/api/chat" : "/api/generate";
  // One object of the answer: a message (chat) or a response (generate).
  auto object = [chat, model_name](const std::string& text, const std::string& thinking) {
    json out = {{"model", model_name}, {"created_at", iso_now()}};
    if (chat) {
      out["message"] = {{"role", "assistant"}, {"content", text}};
      if (!thinking.empty()) out["message"]["thinking"] = thinking;
    } else {
      out["response"] = text;
      if (!thinking.empty()) out["thinking"] = thinking;
    }
    return out;
  };
  const std::optional<ToolCallFormat> tool_calls = prepared.tool_calls;
  const std::vector<ToolDefinition> tools = request.tools;
  if (!stream) {
    const GenerationResult result = server::answer_whole(*scheduler, std::move(job));
    json out = object(result.text, result.thinking);
    if (tool_calls) {
      const ParsedToolAnswer parsed = parse_tool_calls(*tool_calls, tools, result.text, "call");
      out["message"]["content"] = parsed.text;
      if (!parsed.calls.empty()) out["message"]["tool_calls"] = ollama_tool_calls(parsed.calls);
    }
    out.update(done_fields(result, prompt_tokens,
                           std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()));
    response.set_content(out.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
    metrics.request(endpoint, 200);
    return;
  }
  server::AnswerStreamFormat format;
  format.content_type = "application/x-ndjson";
  // With tools, the text goes through a parser: calls come whole in a message of their own.
  auto parser = tool_calls ? std::make_shared<ToolCallParser>(*tool_calls, tools, "call") : nullptr;
  auto text_and_calls = [object, parser](const std::string& text) {
    if (!parser) return object(text, "");
    json piece = object(text, "");
    const std::vector<ToolCall> calls = parser->take_calls();
    if (!calls.empty()) piece["message"]["tool_calls"] = ollama_tool_calls(calls);
    return piece;
  };
  format.piece = [object, parser, text_and_calls](const std::string& text, bool thinking) {
    if (!thinking && parser) {
      const std::string out = parser->feed(text);
      json piece = text_and_calls(out);
      if (out.empty() && !piece["message"].contains("tool_calls")) return std::string();
      piece["done"] = false;
      return piece.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    }
    json piece = thinking ? object("", text) : object(text, "");
    piece["done"] = false;
    return piece.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  };
  format.end = [object, parser, text_and_calls, prompt_tokens, start](const GenerationResult& result) {
    json last = parser ? text_and_calls(parser->finish()) : object("", "");
    last.update(done_fields(result, prompt_tokens,
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()));
    return last.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  };
  format.error = [](const std::string& message) {
    return json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  };
  server::stream_answer(*scheduler, std::move(job), std::move(format), response);
  metrics.request(endpoint, 200);
}

}  // namespace frugal
