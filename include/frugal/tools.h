// Tool (function) calling: the functions a chat offers the model, rendered
// into the prompt as the model's own chat template does; the calls parsed
// out of its answer (also while it streams); and a grammar that makes the
// model call one of them (tool_choice "required" or a named function).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "frugal/chat.h"
#include "frugal/tokenizer.h"

namespace frugal {

// How a model family writes tool calls.
enum class ToolCallFormat {
  // Qwen2.5 / Qwen3 (Hermes style): functions listed in the system turn
  // between <tools></tools>; calls as <tool_call>\n{"name": ..., "arguments":
  // {...}}\n</tool_call>; results in a user turn between <tool_response> tags.
  Hermes,
  // Llama 3.1 / 3.2 / 3.3: functions in the first user turn, a call is the
  // whole answer {"name": ..., "parameters": {...}}, results in ipython turns.
  Llama3Json,
};

// The tool-call format of a model: when the chat format was named rather
// than detected (`template_named`), from the format (qwen2.5 -> Hermes,
// llama3.1 / llama3.2 -> Llama3Json); else from its Jinja chat template's
// markers (<tool_call> in a ChatML template, as Qwen3's; "Environment:
// ipython" in a Llama 3.1+ one). nullopt: the model has no tool calls.
std::optional<ToolCallFormat> detect_tool_call_format(ChatFormat format, std::string_view jinja_template,
                                                      bool template_named);
std::string_view tool_call_format_name(ToolCallFormat format);

// One function offered to the model.
struct ToolDefinition {
  std::string name;
  // The whole definition as the client gave it ({"type": "function",
  // "function": {...}}, keys in their order): templates print it as it is.
  nlohmann::ordered_json definition;
  // The function's arguments schema (an object schema; null: no arguments).
  nlohmann::ordered_json parameters;
};

// A chat rendered with tools: the text, and where in it the texts that came
// from the client are (message contents, tool results, function names,
// arguments, definitions), in order: those are tokenized as plain text, so
// a client cannot write the template's special tokens.
struct ToolChatPrompt {
  std::string text;
  std::vector<std::pair<size_t, size_t>> literals;  // [begin, end) in text

  void add_literal(std::string_view client_text) {
    literals.emplace_back(text.size(), text.size() + client_text.size());
    text += client_text;
  }
};

// Renders `messages` (with assistant tool calls and role "tool" results) and
// `tools` (may be empty: only earlier calls and results) as the chat
// template of `chat` does, for a model whose calls are `format`. Throws
// Error for a conversation the template cannot express (a Llama 3 turn with
// several calls, tools without a user message).
ToolChatPrompt render_tool_chat(ChatFormat chat, ToolCallFormat format, std::span<const ChatMessage> messages,
                                std::span<const ToolDefinition> tools, bool add_generation_prompt);
std::vector<TokenId> encode_tool_chat(const Tokenizer& tokenizer, const ToolChatPrompt& prompt);

// A JSON value as Python's json.dumps writes it (", " and ": " separators;
// indent > 0: one item a line, "," and ": "), which the templates' tojson
// filter uses; keys in their order, non-ASCII text kept as it is.
std::string python_json(const nlohmann::ordered_json& value, int indent = 0);

// A GBNF grammar of one call of one of `tools` (only the function named
// `only` when not empty) in `format`, its arguments following the
// function's parameters schema. Throws Error naming the tool and the part of
// its schema that constrained decoding cannot honour.
std::string tool_call_grammar(ToolCallFormat format, std::span<const ToolDefinition> tools,
                              std::string_view only = "");

// Splits an answer into text and tool calls as it streams: feed() returns
// the text that is surely not part of a call (text that may begin one is
// held back), finish() what is left at the end. Calls of functions that are
// not in `tools`, or whose JSON does not parse, stay text.
class ToolCallParser {
 public:
  ToolCallParser(ToolCallFormat format, std::span<const ToolDefinition> tools, std::string id_prefix);

  std::string feed(std::string_view text);
  std::string finish();
  // The calls completed since the last take, with ids id_prefix + "_" + index.
  std::vector<ToolCall> take_calls();
  size_t call_count() const { return next_index_; }

 private:
  std::string parse_hermes(bool at_end);
  std::optional<ToolCall> parse_call(std::string_view json_text, const char* arguments_key);

  ToolCallFormat format_;
  std::vector<std::string> names_;
  std::string id_prefix_;
  std::string held_;        // text not yet given out
  bool in_call_ = false;    // Hermes: held_ begins with <tool_call>
  bool after_call_ = false; // Hermes: whitespace after a call is dropped
  bool decided_ = false;    // Llama3Json: whether the answer is a call is known
  bool whole_call_ = false; // Llama3Json: the answer began with '{': held to the end
  std::vector<ToolCall> calls_;
  size_t next_index_ = 0;
};

// The whole answer at once: its text (without the calls) and its calls.
struct ParsedToolAnswer {
  std::string text;
  std::vector<ToolCall> calls;
};
ParsedToolAnswer parse_tool_calls(ToolCallFormat format, std::span<const ToolDefinition> tools,
                                  std::string_view answer, std::string id_prefix);

}  // namespace frugal
