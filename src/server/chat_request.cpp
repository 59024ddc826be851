// The chat parts of an OpenAI request: messages (with tool calls and tool
// results), tools, tool_choice and parallel_tool_calls.
#include <fmt/format.h>

#include "server/openai_api.h"

namespace frugal::server {

using nlohmann::json;
using nlohmann::ordered_json;

namespace {

std::string content_text(const json& content, const std::string& where) {
  if (content.is_string()) return content.get<std::string>();
  // The array form: [{"type": "text", "text": "..."}]; other parts are refused.
  if (content.is_array()) {
    std::string text;
    for (const auto& part : content) {
      if (!part.is_object() || !(part.contains("type") && part["type"] == "text") || !part.contains("text") || !part["text"].is_string()) {
        throw invalid_request("only text content parts are supported", where);
      }
      text += part["text"].get<std::string>();
    }
    return text;
  }
  throw invalid_request("content must be a string or an array of text parts", where);
}

const json& member(const json& object, const char* key, const std::string& where) {
  if (!object.is_object() || !object.contains(key)) throw invalid_request(fmt::format("{}.{} is missing", where, key), where);
  return object[key];
}

std::string string_member(const json& object, const char* key, const std::string& where) {
  const json& value = member(object, key, where);
  if (!value.is_string()) throw invalid_request(fmt::format("{}.{} must be a string", where, key), where + "." + key);
  return value.get<std::string>();
}

// OpenAI's rule for function names: a-z, A-Z, 0-9, _ and -, at most 64.
bool valid_function_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (const char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

ToolCall parse_tool_call(const json& call, const std::string& where) {
  if (!call.is_object()) throw invalid_request("each tool call must be an object", where);
  if (call.contains("type") && call["type"] != "function") {
    throw invalid_request("only function tool calls are supported", where + ".type");
  }
  ToolCall parsed;
  parsed.id = string_member(call, "id", where);
  const json& function = member(call, "function", where);
  parsed.name = string_member(function, "name", where + ".function");
  if (!valid_function_name(parsed.name)) {
    throw invalid_request("a function name is 1 to 64 of a-z, A-Z, 0-9, _ and -", where + ".function.name");
  }
  parsed.arguments = string_member(function, "arguments", where + ".function");
  return parsed;
}

}  // namespace

ChatMessage parse_chat_message(const json& m, size_t index) {
  const std::string where = fmt::format("messages[{}]", index);
  if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
    throw invalid_request("each message needs a string role", where + ".role");
  }
  const std::string role = m["role"].get<std::string>();
  if (role != "system" && role != "user" && role != "assistant" && role != "developer" && role != "tool") {
    throw invalid_request(fmt::format("unsupported role '{}'", role), where + ".role");
  }
  ChatMessage message{role == "developer" ? "system" : role, ""};
  const bool calls = role == "assistant" && m.contains("tool_calls") && !m["tool_calls"].is_null();
  if (m.contains("tool_calls") && !m["tool_calls"].is_null() && role != "assistant") {
    throw invalid_request("only assistant messages carry tool_calls", where + ".tool_calls");
  }
  if (calls) {
    if (!m["tool_calls"].is_array()) throw invalid_request("tool_calls must be an array", where + ".tool_calls");
    for (size_t i = 0; i < m["tool_calls"].size(); ++i) {
      message.tool_calls.push_back(parse_tool_call(m["tool_calls"][i], fmt::format("{}.tool_calls[{}]", where, i)));
    }
  }
  // An assistant turn that only calls functions has no content (null).
  const bool content_given = m.contains("content") && !m["content"].is_null();
  if (!content_given && !calls) throw invalid_request("each message needs content", where);
  if (content_given) message.content = content_text(m["content"], where + ".content");
  if (role == "tool") message.tool_call_id = string_member(m, "tool_call_id", where);
  return message;
}

void parse_tool_fields(const json& body, std::string_view text, CompletionRequest& r) {
  const bool has_tools = body.contains("tools") && !body["tools"].is_null();
  if (has_tools) {
    if (!body["tools"].is_array()) throw invalid_request("tools must be an array", "tools");
    const ordered_json tools = ordered_json::parse(text)["tools"];  // keys in the client's order
    for (size_t i = 0; i < tools.size(); ++i) {
      const std::string where = fmt::format("tools[{}]", i);
      const ordered_json& tool = tools[i];
      if (!tool.is_object() || !(tool.contains("type") && tool["type"] == "function") || !tool.contains("function") ||
          !tool["function"].is_object()) {
        throw invalid_request("each tool must be {type: \"function\", function: {...}}", where);
      }
      const ordered_json& function = tool["function"];
      for (const auto& [key, value] : function.items()) {
        if (key != "name" && key != "description" && key != "parameters" && key != "strict") {
          throw invalid_request(fmt::format("{}.function.{} is not supported", where, key),
                                where + ".function." + key);
        }
      }
      if (!function.contains("name") || !function["name"].is_string() ||
          !valid_function_name(function["name"].get<std::string>())) {
        throw invalid_request("a function name is 1 to 64 of a-z, A-Z, 0-9, _ and -", where + ".function.name");
      }
      ToolDefinition definition{function["name"].get<std::string>(), tool, nullptr};
      for (const ToolDefinition& earlier : r.tools) {
        if (earlier.name == definition.name) {
          throw invalid_request(fmt::format("two tools are named '{}'", definition.name), where + ".function.name");
        }
      }
      if (function.contains("parameters") && !function["parameters"].is_null()) {
        if (!function["parameters"].is_object()) {
          throw invalid_request("parameters must be a JSON schema object", where + ".function.parameters");
        }
        definition.parameters = function["parameters"];
      }
      r.tools.push_back(std::move(definition));
    }
  }
  if (body.contains("tool_choice") && !body["tool_choice"].is_null()) {
    const json& choice = body["tool_choice"];
    if (!has_tools || r.tools.empty()) throw invalid_request("tool_choice needs tools", "tool_choice");
    if (choice == "none") {
      r.tool_choice = CompletionRequest::ToolChoice::None;
    } else if (choice == "auto") {
      r.tool_choice = CompletionRequest::ToolChoice::Auto;
    } else if (choice == "required") {
      r.tool_choice = CompletionRequest::ToolChoice::Required;
    } else if (choice.is_object() && choice.contains("type") && choice["type"] == "function" && choice.contains("function")) {
      r.tool_choice = CompletionRequest::ToolChoice::Required;
      r.tool_choice_function = string_member(choice["function"], "name", "tool_choice.function");
      bool known = false;
      for (const ToolDefinition& tool : r.tools) known = known || tool.name == r.tool_choice_function;
      if (!known) {
        throw invalid_request(fmt::format("tool_choice names '{}', which is not among the tools",
                                          r.tool_choice_function),
                              "tool_choice.function.name");
      }
    } else {
      throw invalid_request("tool_choice must be none, auto, required or {type: \"function\", function: {name}}",
                            "tool_choice");
    }
  }
  if (body.contains("parallel_tool_calls") && !body["parallel_tool_calls"].is_null()) {
    if (!body["parallel_tool_calls"].is_boolean()) {
      throw invalid_request("parallel_tool_calls must be true or false", "parallel_tool_calls");
    }
    r.parallel_tool_calls = body["parallel_tool_calls"].get<bool>();
  }
  if (r.beam_width > 1 && !r.tools.empty()) {
    throw invalid_request("tools are not available for beam search answers (beam_width > 1)", "beam_width");
  }
  if (r.grammar && r.may_call_tools()) {
    throw invalid_request(fmt::format("{} cannot be combined with tools the model may call; give tool_choice: "
                                      "\"none\" or leave {} out",
                                      r.grammar_field, r.grammar_field),
                          r.grammar_field);
  }
}

}  // namespace frugal::server
