// Prints frugal's rendering of a chat with tools, for the Jinja reference
// test (jinja_reference.py): reads {"format": NAME, "messages": [...],
// "tools": [...]} on stdin (messages as OpenAI sends them), writes the text.
#include <iostream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "frugal/chat.h"
#include "frugal/tools.h"

int main() {
  using nlohmann::ordered_json;
  const std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  const ordered_json request = ordered_json::parse(input);
  // "qwen3": ChatML whose template defines <tool_call> (Qwen3's layout).
  const std::string name = request["format"].get<std::string>();
  const auto chat = frugal::chat_format_from_name(name == "qwen3" ? "chatml" : name);
  const auto format =
      chat ? frugal::detect_tool_call_format(*chat, name == "qwen3" ? "<tool_call>" : "", name != "qwen3")
           : std::nullopt;
  if (!chat || !format) {
    std::cerr << "no tool format for " << request["format"] << "\n";
    return 2;
  }
  std::vector<frugal::ChatMessage> messages;
  for (const auto& m : request["messages"]) {
    frugal::ChatMessage message{m["role"].get<std::string>(), ""};
    if (m.contains("content") && m["content"].is_string()) message.content = m["content"].get<std::string>();
    for (const auto& call : m.value("tool_calls", ordered_json::array())) {
      message.tool_calls.push_back({call["id"].get<std::string>(), call["function"]["name"].get<std::string>(),
                                    call["function"]["arguments"].get<std::string>()});
    }
    message.tool_call_id = m.value("tool_call_id", "");
    messages.push_back(std::move(message));
  }
  std::vector<frugal::ToolDefinition> tools;
  for (const auto& tool : request.value("tools", ordered_json::array())) {
    tools.push_back({tool["function"]["name"].get<std::string>(), tool,
                     tool["function"].value("parameters", ordered_json(nullptr))});
  }
  std::cout << frugal::render_tool_chat(*chat, *format, messages, tools, true).text;
  return 0;
}
