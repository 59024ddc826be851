// Ollama's API against the OpenAI routes of the same server (the same
// engine path): /api/chat and /api/generate whole and as NDJSON, /api/embed,
// /api/tags, /api/show, /api/ps, /api/version, format (JSON schema), options,
// and errors in Ollama's shape ({"error": "..."}).
#include <gtest/gtest.h>

#include <sstream>

#include "frugal/tools.h"
#include "server_fixture.h"

namespace frugal::test {
namespace {

std::vector<json> ndjson(const std::string& body) {
  std::vector<json> lines;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(json::parse(line));
  }
  return lines;
}

TEST_F(ServerTest, OllamaChatAndGenerateAnswerAsOpenAiDoes) {
  start();
  json openai = chat_body("Name a colour.");
  openai["max_tokens"] = 10;
  const std::string expected =
      json::parse(post("/v1/chat/completions", openai)->body)["choices"][0]["message"]["content"];
  json chat = {{"model", "mini:latest"},
               {"messages", {{{"role", "user"}, {"content", "Name a colour."}}}},
               {"stream", false},
               {"options", {{"temperature", 0}, {"num_predict", 10}, {"num_ctx", 4096}, {"top_k", 0}}}};
  auto response = post("/api/chat", chat);
  ASSERT_EQ(response->status, 200) << response->body;
  const json whole = json::parse(response->body);
  EXPECT_EQ(whole["message"]["content"], expected);
  EXPECT_EQ(whole["done"], true);
  EXPECT_GT(whole["eval_count"].get<int>(), 0);
  EXPECT_GT(whole["prompt_eval_count"].get<int>(), 0);

  chat.erase("stream");  // Ollama streams by default
  response = post("/api/chat", chat);
  ASSERT_EQ(response->status, 200);
  EXPECT_NE(response->get_header_value("Content-Type").find("application/x-ndjson"), std::string::npos);
  const auto lines = ndjson(response->body);
  ASSERT_GE(lines.size(), 2u);
  std::string text;
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["done"], false);
    text += lines[i]["message"]["content"].get<std::string>();
  }
  EXPECT_EQ(text, expected);
  EXPECT_EQ(lines.back()["done"], true);
  EXPECT_EQ(lines.back()["eval_count"], whole["eval_count"]);

  // generate, raw: the prompt as it is, like /v1/completions.
  const json completion = {{"model", "mini"}, {"prompt", "Once upon a time"}, {"max_tokens", 6}, {"temperature", 0}};
  const std::string continued = json::parse(post("/v1/completions", completion)->body)["choices"][0]["text"];
  const json generate = {{"model", "mini"}, {"prompt", "Once upon a time"}, {"raw", true}, {"stream", false},
                         {"options", {{"temperature", 0}, {"num_predict", 6}}}};
  response = post("/api/generate", generate);
  ASSERT_EQ(response->status, 200) << response->body;
  EXPECT_EQ(json::parse(response->body)["response"], continued);
}

TEST_F(ServerTest, OllamaModelsEmbeddingsFormatAndErrors) {
  start();
  const json tags = json::parse(client_->Get("/api/tags")->body);
  std::vector<std::string> names;
  for (const auto& m : tags["models"]) names.push_back(m["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"mini:latest", "mini@town:latest"}));
  EXPECT_EQ(tags["models"][0]["details"]["format"], "gguf");
  EXPECT_TRUE(json::parse(client_->Get("/api/version")->body)["version"].is_string());
  EXPECT_EQ(json::parse(client_->Get("/api/ps")->body)["models"][0]["name"], "mini:latest");
  EXPECT_EQ(json::parse(post("/api/show", {{"model", "mini"}})->body)["details"]["family"], "llama");
  auto missing = post("/api/show", {{"model", "llama3"}});
  EXPECT_EQ(missing->status, 404);
  EXPECT_TRUE(json::parse(missing->body)["error"].is_string());

  const json embedded = json::parse(post("/api/embed", {{"model", "mini"}, {"input", {"Rain.", "Sun."}}})->body);
  const json reference = json::parse(post("/v1/embeddings", {{"model", "mini"}, {"input", {"Rain.", "Sun."}},
                                                              {"encoding_format", "float"}})->body);
  ASSERT_EQ(embedded["embeddings"].size(), 2u);
  EXPECT_EQ(embedded["embeddings"][1], reference["data"][1]["embedding"]);

  const json schema = json::parse(R"({"type": "object", "properties": {"ok": {"type": "boolean"},
      "kind": {"enum": ["a", "b"]}}, "required": ["ok", "kind"], "additionalProperties": false})");
  const json formatted = {{"model", "mini"}, {"messages", {{{"role", "user"}, {"content", "JSON"}}}}, {"stream", false},
                          {"format", schema}, {"options", {{"temperature", 0}, {"num_predict", 200}}}};
  const auto response = post("/api/chat", formatted);
  ASSERT_EQ(response->status, 200) << response->body;
  const json value = json::parse(json::parse(response->body)["message"]["content"].get<std::string>());
  EXPECT_TRUE(value["ok"].is_boolean());
  // format "json": any JSON object, through the JSON-object grammar (a random model's may be cut by num_predict).
  json any_object = formatted;
  any_object["format"] = "json";
  any_object["options"]["num_predict"] = 40;
  const auto object_response = post("/api/chat", any_object);
  ASSERT_EQ(object_response->status, 200) << object_response->body;
  EXPECT_EQ(json::parse(object_response->body)["message"]["content"].get<std::string>().substr(0, 1), "{");

  auto refused = [&](const std::string& path, const json& body, const std::string& words) {
    const auto r = post(path, body);
    ASSERT_EQ(r->status, 400) << body;
    const json error = json::parse(r->body)["error"];
    ASSERT_TRUE(error.is_string()) << r->body;
    EXPECT_NE(error.get<std::string>().find(words), std::string::npos) << r->body;
  };
  const json message = {{{"role", "user"}, {"content", "hi"}}};
  refused("/api/chat", {{"model", "mini"}, {"messages", message}, {"options", {{"mirostat", 2}}}}, "options.mirostat");
  refused("/api/chat", {{"model", "mini"}, {"messages", message}, {"think", true}}, "does not think");
  refused("/api/chat", {{"model", "mini"}, {"messages", message}, {"format", "yaml"}}, "format");
  refused("/api/generate", {{"model", "mini"}, {"prompt", "hi"}, {"context", {1, 2}}}, "'context'");
}

TEST_F(ServerTest, OllamaChatTakesToolsCallsAndResults) {
  ServerOptions options;
  options.chat_template = "qwen2.5";  // the mini model has no template; Qwen 2.5's defines tool calls
  start(options);
  const json tools = json::parse(R"([{"type": "function", "function": {"name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])");
  const json messages = {
      {{"role", "user"}, {"content", "Weather in Oslo?"}},
      {{"role", "assistant"}, {"content", ""},
       {"tool_calls", {{{"function", {{"name", "get_weather"}, {"arguments", {{"city", "Oslo"}}}}}}}}},
      {{"role", "tool"}, {"content", "Sunny, 21 C"}}};
  const auto response = post("/api/chat", {{"model", "mini"}, {"messages", messages}, {"tools", tools},
                                           {"stream", false}, {"options", {{"temperature", 0}, {"num_predict", 4}}}});
  ASSERT_EQ(response->status, 200) << response->body;
  // The prompt is the Qwen 2.5 rendering: the function listed, the call and its result written back.
  const auto ordered = nlohmann::ordered_json::parse(tools.dump());
  const std::vector<ToolDefinition> definitions = {{"get_weather", ordered[0], ordered[0]["function"]["parameters"]}};
  const std::vector<ChatMessage> chat = {{"user", "Weather in Oslo?"},
                                         {"assistant", "", {{"call_0", "get_weather", R"({"city":"Oslo"})"}}},
                                         {"tool", "Sunny, 21 C", {}, "call_0"}};
  const auto prompt = render_tool_chat(ChatFormat::Qwen25, ToolCallFormat::Hermes, chat, definitions, true);
  EXPECT_EQ(json::parse(response->body)["prompt_eval_count"], encode_tool_chat(*tokenizer_, prompt).size());
  // Streamed too (the answer of a random model holds no call: text only).
  const auto streamed = post("/api/chat", {{"model", "mini"}, {"messages", messages}, {"tools", tools},
                                           {"options", {{"temperature", 0}, {"num_predict", 4}}}});
  ASSERT_EQ(streamed->status, 200);
  EXPECT_TRUE(ndjson(streamed->body).back()["done"]);
  // Wrongly typed fields are 400s in Ollama's shape, never server errors.
  for (const json& bad : {json{{"role", 1}, {"content", "x"}}, json{{"role", "user"}, {"content", 5}},
                          json{{"role", "assistant"}, {"content", ""}, {"tool_calls", {5}}}}) {
    const auto refused = post("/api/chat", {{"model", "mini"}, {"messages", {bad}}, {"stream", false}});
    EXPECT_EQ(refused->status, 400) << bad.dump() << " " << refused->body;
    EXPECT_TRUE(json::parse(refused->body)["error"].is_string());
  }
  EXPECT_EQ(post("/api/chat", {{"model", 5}, {"messages", messages}})->status, 400);
}

}  // namespace
}  // namespace frugal::test
