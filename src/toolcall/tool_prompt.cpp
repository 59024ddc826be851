// Chats with tools rendered as the models' own Jinja templates render them
// (Qwen2.5's and Qwen3's `if tools` branches, Llama 3.1's custom-tools
// branch); comments name the construct each rule mirrors.
#include <fmt/format.h>

#include "decode/chat_template_parts.h"
#include "frugal/error.h"
#include "frugal/tools.h"

namespace frugal {

using nlohmann::ordered_json;
using chat_parts::trim;

namespace {

constexpr std::string_view kHermesToolsIntro =
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
constexpr std::string_view kHermesToolsOutro =
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\n</tool_call><|im_end|>\n";
constexpr std::string_view kLlamaToolsIntro =
    "Given the following functions, please respond with a JSON for a function call with its proper arguments "
    "that best answers the given prompt.\n\n"
    "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its "
    "value}.Do not use variables.\n\n";

void write_python_json(const ordered_json& value, int indent, int depth, std::string& out) {
  const auto newline = [&](int level) {
    out += '\n';
    out.append(static_cast<size_t>(indent * level), ' ');
  };
  if (value.is_object() && !value.empty()) {
    out += '{';
    bool first = true;
    for (const auto& [key, item] : value.items()) {
      if (!first) out += indent > 0 ? "," : ", ";
      if (indent > 0) newline(depth + 1);
      first = false;
      out += ordered_json(key).dump(-1, ' ', false, ordered_json::error_handler_t::replace);
      out += ": ";
      write_python_json(item, indent, depth + 1, out);
    }
    if (indent > 0) newline(depth);
    out += '}';
  } else if (value.is_array() && !value.empty()) {
    out += '[';
    bool first = true;
    for (const auto& item : value) {
      if (!first) out += indent > 0 ? "," : ", ";
      if (indent > 0) newline(depth + 1);
      first = false;
      write_python_json(item, indent, depth + 1, out);
    }
    if (indent > 0) newline(depth);
    out += ']';
  } else {
    out += value.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
  }
}

// A call's arguments as the templates' `arguments | tojson` prints them: the
// client sends them as JSON text, which llama.cpp parses into an object
// first. Text that is not JSON is printed as it is.
std::string arguments_json(const std::string& arguments) {
  try {
    return python_json(ordered_json::parse(arguments));
  } catch (const nlohmann::json::exception&) {
    return arguments;
  }
}

[[noreturn]] void unsupported(const ChatMessage& message, size_t index, std::string_view format) {
  throw Error(fmt::format("a '{}' message at position {} cannot be written in the {} tool format", message.role,
                          index, format));
}

ToolChatPrompt render_hermes(bool qwen25, std::span<const ChatMessage> messages, std::span<const ToolDefinition> tools,
                             bool add_generation_prompt) {
  ToolChatPrompt prompt;
  std::string& out = prompt.text;
  const bool leading_system = !messages.empty() && messages.front().role == "system";
  if (!tools.empty()) {  // {%- if tools %}: the system turn lists the functions
    out += "<|im_start|>system\n";
    if (leading_system) {
      prompt.add_literal(messages.front().content);
      if (!qwen25) out += "\n\n";  // Qwen3: messages[0].content + '\n\n'
    } else if (qwen25) {
      out += chat_parts::kQwen25DefaultSystem;
    }
    if (qwen25) out += "\n\n";
    out += kHermesToolsIntro;
    for (const ToolDefinition& tool : tools) {
      out += "\n";
      prompt.add_literal(python_json(tool.definition));  // {{- tool | tojson }}
    }
    out += kHermesToolsOutro;
  } else if (leading_system) {
    out += "<|im_start|>system\n";
    prompt.add_literal(messages.front().content);
    out += "<|im_end|>\n";
  } else if (qwen25) {
    out += fmt::format("<|im_start|>system\n{}<|im_end|>\n", chat_parts::kQwen25DefaultSystem);
  }
  for (size_t i = leading_system ? 1 : 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "user" || m.role == "system" || (m.role == "assistant" && m.tool_calls.empty())) {
      out += "<|im_start|>" + m.role + "\n";
      prompt.add_literal(m.content);
      out += "<|im_end|>\n";
    } else if (m.role == "assistant") {
      out += "<|im_start|>assistant";
      if (!m.content.empty()) {
        out += "\n";
        prompt.add_literal(m.content);
      }
      for (const ToolCall& call : m.tool_calls) {
        // Qwen2.5 prints `arguments | tojson`; Qwen3 prints a string as it is.
        out += "\n<tool_call>\n{\"name\": \"";
        prompt.add_literal(call.name);
        out += "\", \"arguments\": ";
        prompt.add_literal(qwen25 ? arguments_json(call.arguments) : call.arguments);
        out += "}\n</tool_call>";
      }
      out += "<|im_end|>\n";
    } else if (m.role == "tool") {
      // Consecutive results share one user turn.
      if (i == 0 || messages[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n";
      prompt.add_literal(m.content);
      out += "\n</tool_response>";
      if (i + 1 == messages.size() || messages[i + 1].role != "tool") out += "<|im_end|>\n";
    } else {
      unsupported(m, i, "Qwen");
    }
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return prompt;
}

ToolChatPrompt render_llama3_json(std::string_view date, std::span<const ChatMessage> messages,
                                  std::span<const ToolDefinition> tools, bool add_generation_prompt) {
  ToolChatPrompt prompt;
  std::string& out = prompt.text;
  std::string_view system_message;
  size_t first = 0;
  if (!messages.empty() && messages.front().role == "system") {
    system_message = trim(messages.front().content);
    first = 1;
  }
  out += "<|start_header_id|>system<|end_header_id|>\n\n";
  if (!tools.empty()) out += "Environment: ipython\n";
  out += fmt::format("Cutting Knowledge Date: December 2023\nToday Date: {}\n\n", date);
  prompt.add_literal(system_message);
  out += "<|eot_id|>";
  const auto turn = [&](std::string_view role, std::string_view content) {
    out += fmt::format("<|start_header_id|>{}<|end_header_id|>\n\n", role);
    prompt.add_literal(content);
    out += "<|eot_id|>";
  };
  if (!tools.empty()) {
    // tools_in_user_message: the functions go into the first message after
    // the system message, whatever its role.
    if (first == messages.size()) {
      throw Error("the Llama 3 tool format puts the functions into the first user message; the chat has none");
    }
    out += "<|start_header_id|>user<|end_header_id|>\n\n";
    out += kLlamaToolsIntro;
    for (const ToolDefinition& tool : tools) {
      prompt.add_literal(python_json(tool.definition, 4));  // {{- t | tojson(indent=4) }}
      out += "\n\n";
    }
    const std::string_view first_user = trim(messages[first].content);
    prompt.add_literal(first_user);
    out += "<|eot_id|>";
    ++first;
  }
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (!m.tool_calls.empty()) {
      if (m.tool_calls.size() != 1) {
        throw Error(fmt::format("message {} makes {} tool calls; the Llama 3 tool format holds one call a turn", i,
                                m.tool_calls.size()));
      }
      const ToolCall& call = m.tool_calls.front();
      out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      out += "{\"name\": \"";
      prompt.add_literal(call.name);
      out += "\", \"parameters\": ";
      prompt.add_literal(arguments_json(call.arguments));
      out += "}<|eot_id|>";
    } else if (m.role == "tool" || m.role == "ipython") {
      // `message.content is iterable` holds for a string too: it is printed as JSON.
      turn("ipython", python_json(ordered_json(m.content)));
    } else if (m.role == "user" || m.role == "assistant" || m.role == "system") {
      turn(m.role, trim(m.content));
    } else {
      unsupported(m, i, "Llama 3");
    }
  }
  if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return prompt;
}

}  // namespace

std::string python_json(const ordered_json& value, int indent) {
  std::string out;
  write_python_json(value, indent, 0, out);
  return out;
}

std::optional<ToolCallFormat> detect_tool_call_format(ChatFormat format, std::string_view jinja_template,
                                                      bool template_named) {
  const bool chatml = format == ChatFormat::ChatML || format == ChatFormat::Qwen25;
  const bool llama = format == ChatFormat::Llama31 || format == ChatFormat::Llama32;
  if (template_named) {  // these formats' templates always define tool calls
    if (format == ChatFormat::Qwen25) return ToolCallFormat::Hermes;
    if (llama) return ToolCallFormat::Llama3Json;
  }
  const auto contains = [&](std::string_view marker) { return jinja_template.find(marker) != std::string_view::npos; };
  if (chatml && contains("<tool_call>")) return ToolCallFormat::Hermes;
  if (llama && (contains("Environment: ipython") || contains("<|python_tag|>"))) return ToolCallFormat::Llama3Json;
  return std::nullopt;
}

std::string_view tool_call_format_name(ToolCallFormat format) {
  return format == ToolCallFormat::Hermes ? "qwen (<tool_call>)" : "llama3 (JSON)";
}

ToolChatPrompt render_tool_chat(ChatFormat chat, ToolCallFormat format, std::span<const ChatMessage> messages,
                                std::span<const ToolDefinition> tools, bool add_generation_prompt) {
  switch (format) {
    case ToolCallFormat::Hermes:
      return render_hermes(chat == ChatFormat::Qwen25, messages, tools, add_generation_prompt);
    case ToolCallFormat::Llama3Json:
      return render_llama3_json(chat == ChatFormat::Llama32 ? chat_parts::today_for_llama32()
                                                            : std::string(chat_parts::kLlama31Date),
                                messages, tools, add_generation_prompt);
  }
  throw Error("unknown tool-call format");
}

std::vector<TokenId> encode_tool_chat(const Tokenizer& tokenizer, const ToolChatPrompt& prompt) {
  // Spans recorded while rendering: a client's text is never looked for (a
  // short one could be found inside the template's own special tokens).
  std::vector<Tokenizer::TextPart> parts;
  size_t position = 0;
  for (const auto& [begin, end] : prompt.literals) {
    parts.push_back({std::string_view(prompt.text).substr(position, begin - position), true});
    parts.push_back({std::string_view(prompt.text).substr(begin, end - begin), false});
    position = end;
  }
  parts.push_back({std::string_view(prompt.text).substr(position), true});
  return tokenizer.encode_parts(parts, true);
}

}  // namespace frugal
