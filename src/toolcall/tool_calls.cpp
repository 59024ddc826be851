// Tool calls out of an answer, and the grammar that forces one.
#include <algorithm>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/json_schema.h"
#include "frugal/tools.h"

namespace frugal {

using nlohmann::ordered_json;

namespace {

constexpr std::string_view kCallOpen = "<tool_call>";
constexpr std::string_view kCallClose = "</tool_call>";

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

// The length of the longest end of `text` that `marker` begins with: text
// that may become the marker once more arrives.
size_t partial_marker(std::string_view text, std::string_view marker) {
  for (size_t length = std::min(text.size(), marker.size() - 1); length > 0; --length) {
    if (marker.substr(0, length) == text.substr(text.size() - length)) return length;
  }
  return 0;
}

std::string_view trimmed_end(std::string_view text) {
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

}  // namespace

ToolCallParser::ToolCallParser(ToolCallFormat format, std::span<const ToolDefinition> tools, std::string id_prefix)
    : format_(format), id_prefix_(std::move(id_prefix)) {
  for (const ToolDefinition& tool : tools) names_.push_back(tool.name);
}

std::optional<ToolCall> ToolCallParser::parse_call(std::string_view json_text, const char* arguments_key) {
  ordered_json call;
  try {
    call = ordered_json::parse(trimmed(json_text));
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  if (!call.is_object() || !call.contains("name") || !call["name"].is_string()) return std::nullopt;
  const std::string name = call["name"].get<std::string>();
  if (std::find(names_.begin(), names_.end(), name) == names_.end()) return std::nullopt;
  // Llama 3 models write "parameters" as told, sometimes "arguments".
  const char* key = call.contains(arguments_key) ? arguments_key : "arguments";
  ordered_json arguments = call.contains(key) ? call[key] : ordered_json::object();
  if (arguments.is_string()) {  // arguments given as JSON text
    try {
      arguments = ordered_json::parse(arguments.get<std::string>());
    } catch (const nlohmann::json::exception&) {
      return std::nullopt;
    }
  }
  if (!arguments.is_object()) return std::nullopt;
  return ToolCall{fmt::format("{}_{}", id_prefix_, next_index_++), name,
                  arguments.dump(-1, ' ', false, ordered_json::error_handler_t::replace)};
}

std::string ToolCallParser::parse_hermes(bool at_end) {
  std::string out;
  for (;;) {
    if (after_call_) {  // the newlines between and after calls are not text
      const auto text_begins = std::find_if_not(held_.begin(), held_.end(), is_space);
      held_.erase(held_.begin(), text_begins);
      if (held_.empty()) return out;
      after_call_ = false;
    }
    if (!in_call_) {
      const size_t open = held_.find(kCallOpen);
      if (open == std::string::npos) {
        // Held back: what may begin a call, and the whitespace before it
        // (the newline between text and a call is not text).
        size_t keep = at_end ? 0 : partial_marker(held_, kCallOpen);
        while (!at_end && keep < held_.size() && is_space(held_[held_.size() - keep - 1])) ++keep;
        out += held_.substr(0, held_.size() - keep);
        held_.erase(0, held_.size() - keep);
        return out;
      }
      out += trimmed_end(std::string_view(held_).substr(0, open));
      held_.erase(0, open);
      in_call_ = true;
    }
    const size_t close = held_.find(kCallClose);
    if (close == std::string::npos && !at_end) return out;
    // An answer may end without the closing tag (the model stopped there).
    const size_t inner_end = close == std::string::npos ? held_.size() : close;
    const size_t call_end = close == std::string::npos ? held_.size() : close + kCallClose.size();
    const auto call = parse_call(std::string_view(held_).substr(kCallOpen.size(), inner_end - kCallOpen.size()),
                                 "arguments");
    if (call) {
      calls_.push_back(*call);
      after_call_ = true;
    } else {
      out += held_.substr(0, call_end);  // not a call after all: text
    }
    held_.erase(0, call_end);
    in_call_ = false;
    if (held_.empty()) return out;
  }
}

std::string ToolCallParser::feed(std::string_view text) {
  held_ += text;
  if (format_ == ToolCallFormat::Hermes) return parse_hermes(false);
  if (!decided_) {  // Llama 3: an answer that begins with '{' is a call
    const auto first = std::find_if_not(held_.begin(), held_.end(), is_space);
    if (first == held_.end()) return "";
    decided_ = true;
    whole_call_ = *first == '{';
  }
  if (whole_call_) return "";
  return std::exchange(held_, {});
}

std::string ToolCallParser::finish() {
  if (format_ == ToolCallFormat::Hermes) return parse_hermes(true);
  if (whole_call_) {
    if (auto call = parse_call(held_, "parameters")) {
      calls_.push_back(*call);
      held_.clear();
      return "";
    }
  }
  return std::exchange(held_, {});
}

std::vector<ToolCall> ToolCallParser::take_calls() { return std::exchange(calls_, {}); }

ParsedToolAnswer parse_tool_calls(ToolCallFormat format, std::span<const ToolDefinition> tools,
                                  std::string_view answer, std::string id_prefix) {
  ToolCallParser parser(format, tools, std::move(id_prefix));
  ParsedToolAnswer parsed;
  parsed.text = parser.feed(answer);
  parsed.text += parser.finish();
  parsed.calls = parser.take_calls();
  return parsed;
}

namespace {

// References of a tool's schema as references into the call schema's $defs,
// where its parameters are `name` and its definitions `name`-X.
void rewrite_references(ordered_json& node, const std::string& name) {
  if (node.is_array()) {
    for (auto& item : node) rewrite_references(item, name);
    return;
  }
  if (!node.is_object()) return;
  for (auto& [key, value] : node.items()) {
    if (key != "$ref" || !value.is_string()) {
      rewrite_references(value, name);
      continue;
    }
    const std::string reference = value.get<std::string>();
    if (reference == "#") value = "#/$defs/" + name;
    for (const std::string prefix : {"#/$defs/", "#/definitions/"}) {
      if (reference.starts_with(prefix)) value = "#/$defs/" + name + "-" + reference.substr(prefix.size());
    }
  }
}

}  // namespace

std::string tool_call_grammar(ToolCallFormat format, std::span<const ToolDefinition> tools, std::string_view only) {
  const char* arguments_key = format == ToolCallFormat::Hermes ? "arguments" : "parameters";
  ordered_json calls = ordered_json::array();
  ordered_json definitions = ordered_json::object();
  for (const ToolDefinition& tool : tools) {
    if (!only.empty() && tool.name != only) continue;
    ordered_json parameters =
        tool.parameters.is_null() ? ordered_json{{"type", "object"}, {"properties", ordered_json::object()}}
                                  : tool.parameters;
    try {
      json_schema_to_gbnf(parameters);  // says where a schema cannot be honoured, relative to the tool
    } catch (const Error& e) {
      throw Error(fmt::format("tool '{}': {}", tool.name, e.what()));
    }
    // Its own definitions move up beside it, so that its references still resolve.
    const std::string name = tool.name + "-arguments";
    for (const char* key : {"$defs", "definitions"}) {
      if (!parameters.contains(key) || !parameters[key].is_object()) continue;
      for (auto& [definition, schema] : parameters[key].items()) {
        rewrite_references(schema, name);
        definitions[name + "-" + definition] = schema;
      }
      parameters.erase(key);
    }
    rewrite_references(parameters, name);
    definitions[name] = parameters;
    calls.push_back({{"type", "object"},
                     {"properties", {{"name", {{"const", tool.name}}}, {arguments_key, {{"$ref", "#/$defs/" + name}}}}},
                     {"required", {"name", arguments_key}}});
  }
  if (calls.empty()) throw Error(fmt::format("no tool is named '{}'", only));
  ordered_json schema = calls.size() == 1 ? calls[0] : ordered_json{{"anyOf", calls}};
  schema["$defs"] = definitions;
  // The schema's grammar with its root renamed, inside the format's tags.
  std::string rules = "\n";
  rules += json_schema_to_gbnf(schema);
  const size_t root_rule = rules.find("\nroot ::= ");
  if (root_rule == std::string::npos) throw Error("internal: the schema grammar has no root rule");
  rules.replace(root_rule + 1, 4, "tool-call");
  const std::string root = format == ToolCallFormat::Hermes ? "root ::= \"<tool_call>\\n\" tool-call \"\\n</tool_call>\"\n"
                                                             : "root ::= tool-call\n";
  return root + rules;
}

}  // namespace frugal
