// Tools over HTTP on the shared mini model served with --chat-template
// qwen2.5 (random weights: only a forced call makes it call a function):
// forced and named calls, whole and streamed, a round trip with the result,
// and the 400s for what cannot be honoured.
#include <gtest/gtest.h>

#include "frugal/tools.h"
#include "server_fixture.h"

namespace frugal::test {
namespace {

// Small enums: a random model's forced call still ends.
const json kTools = json::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
   "parameters": {"type": "object", "properties": {"city": {"enum": ["Oslo", "Paris"]}, "unit": {"enum": ["C", "F"]}},
                  "required": ["city", "unit"], "additionalProperties": false}}},
  {"type": "function", "function": {"name": "now", "description": "The time"}}])");

json tools_body(const json& tool_choice, bool stream = false) {
  json body = {{"model", "mini"}, {"messages", {{{"role", "user"}, {"content", "Weather in Oslo?"}}}},
               {"temperature", 0}, {"stream", stream}, {"max_tokens", 120}, {"tools", kTools}};
  if (!tool_choice.is_null()) body["tool_choice"] = tool_choice;
  return body;
}

ServerOptions qwen_format() {
  ServerOptions options;
  options.chat_template = "qwen2.5";
  return options;
}

void expect_call(const json& call) {
  ASSERT_TRUE(call["id"].is_string()) << call;
  EXPECT_EQ(call["type"], "function");
  const std::string name = call["function"]["name"];
  const json arguments = json::parse(call["function"]["arguments"].get<std::string>());
  if (name == "get_weather") {
    EXPECT_TRUE(arguments["city"] == "Oslo" || arguments["city"] == "Paris") << call;
    EXPECT_TRUE(arguments["unit"] == "C" || arguments["unit"] == "F") << call;
  } else {
    EXPECT_EQ(name, "now");
    EXPECT_EQ(arguments, json::object());
  }
}

TEST_F(ServerTest, ForcedToolCallWholeAndStreamed) {
  start(qwen_format());
  const auto response = post("/v1/chat/completions", tools_body("required"));
  ASSERT_EQ(response->status, 200) << response->body;
  const json choice = json::parse(response->body)["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_TRUE(choice["message"]["content"].is_null()) << choice;
  ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u) << choice;
  expect_call(choice["message"]["tool_calls"][0]);

  // Streamed: the same call in a delta of its own, no <tool_call> text.
  const auto streamed = post("/v1/chat/completions", tools_body("required", true));
  ASSERT_EQ(streamed->status, 200);
  json calls = json::array();
  std::string finish;
  size_t at = 0;
  while ((at = streamed->body.find("data: {", at)) != std::string::npos) {
    const size_t end = streamed->body.find("\n\n", at);
    const json chunk = json::parse(streamed->body.substr(at + 6, end - at - 6));
    at = end;
    const json& delta = chunk["choices"][0]["delta"];
    if (delta.contains("tool_calls")) {
      for (const json& call : delta["tool_calls"]) calls.push_back(call);
    }
    EXPECT_FALSE(delta.contains("content") && delta["content"].get<std::string>().find("<tool_call>") !=
                                                   std::string::npos);
    if (!chunk["choices"][0]["finish_reason"].is_null()) finish = chunk["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(finish, "tool_calls");
  ASSERT_EQ(calls.size(), 1u) << streamed->body;
  EXPECT_EQ(calls[0]["index"], 0);
  EXPECT_EQ(calls[0]["function"], choice["message"]["tool_calls"][0]["function"]);
}

TEST_F(ServerTest, Llama3ForcedCallIsTheWholeAnswerAndParses) {
  ServerOptions options;
  options.chat_template = "llama3.1";  // Llama 3's JSON calls: {"name": ..., "parameters": {...}}
  start(options);
  const auto response = post("/v1/chat/completions", tools_body("required"));
  ASSERT_EQ(response->status, 200) << response->body;
  const json choice = json::parse(response->body)["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u) << choice;
  expect_call(choice["message"]["tool_calls"][0]);
  // The call and its result go back as the Llama 3.1 template writes them (an ipython turn).
  json round_trip = tools_body(nullptr);
  round_trip["max_tokens"] = 4;
  round_trip["messages"].push_back(choice["message"]);
  round_trip["messages"].push_back({{"role", "tool"}, {"tool_call_id", choice["message"]["tool_calls"][0]["id"]},
                                    {"content", "Sunny"}});
  EXPECT_EQ(post("/v1/chat/completions", round_trip)->status, 200);
}

TEST_F(ServerTest, NamedToolChoiceCallsThatFunction) {
  start(qwen_format());
  const auto response = post("/v1/chat/completions", tools_body({{"type", "function"}, {"function", {{"name", "now"}}}}));
  ASSERT_EQ(response->status, 200) << response->body;
  const json call = json::parse(response->body)["choices"][0]["message"]["tool_calls"][0];
  EXPECT_EQ(call["function"]["name"], "now");
  expect_call(call);
}

TEST_F(ServerTest, ToolResultsGoBackIntoThePromptAsTheTemplateWritesThem) {
  start(qwen_format());
  json body = tools_body(nullptr);
  body["max_tokens"] = 4;
  body["messages"].push_back(
      {{"role", "assistant"},
       {"content", nullptr},
       {"tool_calls", {{{"id", "c1"}, {"type", "function"},
                        {"function", {{"name", "get_weather"}, {"arguments", R"({"city": "Oslo", "unit": "C"})"}}}}}}});
  body["messages"].push_back({{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "Sunny, 21 C"}});
  const auto response = post("/v1/chat/completions", body);
  ASSERT_EQ(response->status, 200) << response->body;
  // The prompt is the Qwen 2.5 rendering of the conversation, tools listed.
  std::vector<ToolDefinition> tools;
  for (const json& tool : kTools) {
    const auto ordered = nlohmann::ordered_json::parse(tool.dump());
    tools.push_back({tool["function"]["name"], ordered, ordered["function"].value("parameters", nlohmann::ordered_json())});
  }
  const std::vector<ChatMessage> messages = {
      {"user", "Weather in Oslo?"},
      {"assistant", "", {{"c1", "get_weather", R"({"city": "Oslo", "unit": "C"})"}}},
      {"tool", "Sunny, 21 C", {}, "c1"}};
  const ToolChatPrompt prompt = render_tool_chat(ChatFormat::Qwen25, ToolCallFormat::Hermes, messages, tools, true);
  EXPECT_NE(prompt.text.find("<tool_response>\nSunny, 21 C\n</tool_response>"), std::string::npos);
  EXPECT_EQ(json::parse(response->body)["usage"]["prompt_tokens"], encode_tool_chat(*tokenizer_, prompt).size());
}

TEST_F(ServerTest, ToolRequestsItCannotHonourAreRefusedByName) {
  auto refused = [&](const json& body, const std::string& param, const std::string& words) {
    expect_refused(body, param, words);
  };
  start();  // the mini model has no chat template: ChatML without tool calls
  refused(tools_body("auto"), "tools", "defines no tool calls");
  json result = chat_body("x");
  result["messages"].push_back({{"role", "tool"}, {"tool_call_id", "c1"}, {"content", "42"}});
  refused(result, "messages", "defines no tool calls");
  server_->stop();
  thread_.join();

  start(qwen_format());
  json no_tools = chat_body("x");
  no_tools["tool_choice"] = "required";
  refused(no_tools, "tool_choice", "needs tools");
  refused(tools_body({{"type", "function"}, {"function", {{"name", "launch"}}}}), "tool_choice.function.name",
          "launch");
  json minimum = tools_body("required");
  minimum["tools"][0]["function"]["parameters"]["properties"]["days"] = {{"type", "integer"}, {"minimum", 1}};
  refused(minimum, "tools", "minimum");
  json bad_name = tools_body("auto");
  bad_name["tools"][1]["function"]["name"] = "the time";
  refused(bad_name, "tools[1].function.name", "a-z");
  json extra = tools_body("auto");
  extra["tools"][1]["function"]["returns"] = "string";
  refused(extra, "tools[1].function.returns", "not supported");
  json format = tools_body("auto");
  format["response_format"] = {{"type", "json_object"}};
  refused(format, "response_format", "tool_choice");
  json logprobs = tools_body("auto");
  logprobs["logprobs"] = true;
  refused(logprobs, "logprobs", "tools");
  json orphan = chat_body("x");
  orphan["messages"][0]["tool_calls"] = json::array();
  refused(orphan, "messages[0].tool_calls", "assistant");
  json knowledge = tools_body("auto");
  knowledge["model"] = "mini@town";
  refused(knowledge, "tools", "knowledge cache");
  json call_name = chat_body("x");
  call_name["messages"].push_back({{"role", "assistant"}, {"content", nullptr},
                                   {"tool_calls", {{{"id", "c"}, {"type", "function"},
                                                    {"function", {{"name", "<|im_end|>"}, {"arguments", "{}"}}}}}}});
  refused(call_name, "messages[1].tool_calls[0].function.name", "a-z");
  json typed = tools_body("auto");
  typed["tools"][0]["type"] = 5;
  refused(typed, "tools[0]", "type");
  json choice = tools_body({{"type", 1}});
  refused(choice, "tool_choice", "tool_choice");
  // A completion takes no tools; a body nested too deep is refused before anything walks it.
  const auto completion = post("/v1/completions", {{"model", "mini"}, {"prompt", "x"}, {"tools", kTools}});
  EXPECT_EQ(completion->status, 400);
  std::string deep = R"({"model": "mini", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function",
    "function": {"name": "f", "description": )";
  deep += std::string(50000, '[') + std::string(50000, ']') + "}}]}";
  const auto nested = client_->Post("/v1/chat/completions", deep, "application/json");
  ASSERT_TRUE(nested);
  EXPECT_EQ(nested->status, 400);
  EXPECT_EQ(client_->Get("/health")->status, 200);  // still serving
}

}  // namespace
}  // namespace frugal::test
