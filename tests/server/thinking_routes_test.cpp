// Thinking over HTTP: message.reasoning_content, streamed
// delta.reasoning_content, usage.completion_tokens_details.reasoning_tokens,
// budgets and switches per request, checked against generate() over a
// KvCache with the same options (the CLI's path), and the 400s for what a
// model cannot do.
#include <gtest/gtest.h>

#include "frugal/generate.h"
#include "server_fixture.h"
#include "support/model_builder.h"

namespace frugal::test {
namespace {

// The shared mini model with a template that opens the thinking block in
// its generation prompt (as DeepSeek-R1 distills' do), laid out as ChatML
// (--chat-template chatml): all it writes is thinking until frugal closes it.
class ThinkingServer : public ServerTest {
 protected:
  static void SetUpTestSuite() {
    ServerTest::SetUpTestSuite();
    const auto path = dir_ / "thinking-mini.gguf";
    rewrite_gguf(shared_path("models/mini-llama-spm-q8_0.gguf"), path, [](GgufEdit& edit) {
      edit.metadata.emplace_back("tokenizer.chat_template",
                                 GgufValue::string("{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}"
                                                   "{{'<｜Assistant｜><think>\\n'}}"));
    });
    thinking_model_ = Model::load(path, {.threads = 2}).release();
  }
  static void TearDownTestSuite() {
    delete thinking_model_;
    ServerTest::TearDownTestSuite();
  }

  void start_thinking(ServerOptions options = {}) {
    options.port = 0;
    options.model_name = "mini";
    options.context = 1024;
    options.chat_template = "chatml";
    server_ = std::make_unique<Server>(*thinking_model_, *tokenizer_, options);
    server_->bind();
    thread_ = std::thread([this] { server_->serve(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(60, 0);
  }

  // What the CLI's path gives for the same prompt and settings.
  static GenerationResult reference(const ThinkingSettings& settings, int32_t max_tokens) {
    GenerationOptions options;
    options.max_tokens = max_tokens;
    options.sampling.temperature = 0;
    options.sampling.top_k = 0;
    options.sampling.min_p = 0;
    options.sampling.repeat_penalty = 1;
    options.thinking = make_thinking_options(ThinkingFormat{.opened_by_template = true}, settings, *tokenizer_);
    KvCache cache(thinking_model_->config(), 1024);
    return generate(*thinking_model_, *tokenizer_, cache, chat_tokens("Why is the sky blue?"), options);
  }

  static inline Model* thinking_model_ = nullptr;
};

TEST_F(ThinkingServer, BudgetedThinkingComesApartFromTheAnswer) {
  start_thinking();
  json body = chat_body("Why is the sky blue?");
  body["max_tokens"] = 20;
  body["thinking_budget"] = 6;
  const auto response = post("/v1/chat/completions", body);
  ASSERT_TRUE(response);
  ASSERT_EQ(response->status, 200) << response->body;
  const json answer = json::parse(response->body);
  ThinkingSettings settings;
  settings.budget = 6;
  const GenerationResult expected = reference(settings, 20);
  ASSERT_TRUE(expected.thinking_cut);
  const json& message = answer["choices"][0]["message"];
  EXPECT_EQ(message["reasoning_content"], expected.thinking);
  EXPECT_EQ(message["content"], expected.text);
  EXPECT_EQ(answer["usage"]["completion_tokens_details"]["reasoning_tokens"], expected.thinking_tokens);
  EXPECT_EQ(answer["usage"]["completion_tokens"], expected.tokens.size());

  // Streamed: the same thinking and answer, piece by piece, and the usage.
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  const auto streamed = post("/v1/chat/completions", body);
  ASSERT_TRUE(streamed);
  std::string thinking, content;
  size_t at = 0;
  json usage;
  while ((at = streamed->body.find("data: {", at)) != std::string::npos) {
    const size_t end = streamed->body.find("\n\n", at);
    const json chunk = json::parse(streamed->body.substr(at + 6, end - at - 6));
    at = end;
    if (chunk.contains("usage")) usage = chunk["usage"];
    if (chunk["choices"].empty()) continue;
    const json& delta = chunk["choices"][0]["delta"];
    if (delta.contains("reasoning_content")) thinking += delta["reasoning_content"].get<std::string>();
    if (delta.contains("content")) content += delta["content"].get<std::string>();
  }
  EXPECT_EQ(thinking, expected.thinking);
  EXPECT_EQ(content, expected.text);
  EXPECT_EQ(usage["completion_tokens_details"]["reasoning_tokens"], expected.thinking_tokens);
}

TEST_F(ThinkingServer, ThinkingOffByKwargOrEffortWritesTheEmptyBlock) {
  start_thinking();
  ThinkingSettings off;
  off.enabled = false;
  const GenerationResult expected = reference(off, 10);
  for (const json& field : {json{{"chat_template_kwargs", {{"enable_thinking", false}}}},
                            json{{"reasoning_effort", "none"}}, json{{"thinking_budget", 0}}}) {
    json body = chat_body("Why is the sky blue?");
    body["max_tokens"] = 10;
    body.update(field);
    const auto response = post("/v1/chat/completions", body);
    ASSERT_EQ(response->status, 200) << response->body;
    const json message = json::parse(response->body)["choices"][0]["message"];
    EXPECT_EQ(message["content"], expected.text) << field;
    EXPECT_EQ(message["reasoning_content"], "") << field;
  }
}

TEST_F(ThinkingServer, ServerDefaultsApplyUnlessARequestSays) {
  ServerOptions options;
  options.thinking.budget = 4;
  start_thinking(options);
  json body = chat_body("Why is the sky blue?");
  body["max_tokens"] = 16;
  ThinkingSettings four;
  four.budget = 4;
  auto response = post("/v1/chat/completions", body);
  EXPECT_EQ(json::parse(response->body)["choices"][0]["message"]["reasoning_content"], reference(four, 16).thinking);
  body["reasoning_effort"] = "high";  // no limit
  response = post("/v1/chat/completions", body);
  EXPECT_EQ(json::parse(response->body)["choices"][0]["message"]["reasoning_content"],
            reference(ThinkingSettings{}, 16).thinking);
}

TEST_F(ThinkingServer, ContradictionsAndUnknownKwargsAreRefused) {
  start_thinking();
  const std::pair<json, std::string> cases[] = {
      {{{"chat_template_kwargs", {{"enable_thinking", false}}}, {"thinking_budget", 5}}, "thinking_budget"},
      {{{"chat_template_kwargs", {{"add_vision_id", true}}}}, "chat_template_kwargs.add_vision_id"},
      {{{"reasoning_effort", "extreme"}}, "reasoning_effort"},
      {{{"reasoning_exit", "sure:0.5"}}, "reasoning_exit"},
      {{{"thinking_budget", 4}, {"beam_width", 2}}, "beam_width"},
  };
  for (const auto& [fields, param] : cases) {
    json body = chat_body("Hello");
    body.update(fields);
    const auto response = post("/v1/chat/completions", body);
    ASSERT_EQ(response->status, 400) << fields;
    EXPECT_EQ(json::parse(response->body)["error"]["param"], param) << fields;
  }
  json completion = {{"model", "mini"}, {"prompt", "Hello"}, {"reasoning_effort", "low"}};
  EXPECT_EQ(post("/v1/completions", completion)->status, 400);
}

// The mini model's own file has no thinking template.
TEST_F(ServerTest, AModelThatDoesNotThinkRefusesThinkingSettings) {
  start();
  for (const json& field : {json{{"chat_template_kwargs", {{"enable_thinking", true}}}},
                            json{{"reasoning_effort", "low"}}, json{{"thinking_budget", 16}}}) {
    json body = chat_body("Hello");
    body.update(field);
    const auto response = post("/v1/chat/completions", body);
    ASSERT_EQ(response->status, 400) << field;
    EXPECT_NE(json::parse(response->body)["error"]["message"].get<std::string>().find("does not think"),
              std::string::npos);
  }
  json off = chat_body("Hello");
  off["reasoning_effort"] = "none";  // asks for nothing it lacks
  const auto response = post("/v1/chat/completions", off);
  EXPECT_EQ(response->status, 200);
  EXPECT_FALSE(json::parse(response->body)["choices"][0]["message"].contains("reasoning_content"));
}

}  // namespace
}  // namespace frugal::test
