#include "frugal/tools.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "frugal/gguf.h"

#include "frugal/error.h"
#include "frugal/generate.h"
#include "frugal/grammar.h"
#include "frugal/model.h"
#include "support/greedy_options.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using nlohmann::ordered_json;

std::vector<ToolDefinition> weather_tools() {
  const ordered_json weather = ordered_json::parse(R"({"type": "function", "function": {"name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"enum": ["Oslo", "Paris"]}, "days": {"type": "integer"}},
                   "required": ["city"], "additionalProperties": false}}})");
  const ordered_json now = ordered_json::parse(R"({"type": "function", "function": {"name": "now"}})");
  return {{"get_weather", weather, weather["function"]["parameters"]}, {"now", now, nullptr}};
}

TEST(PythonJson, WritesWhatJsonDumpsWrites) {
  // Expected texts are Python 3's json.dumps(value, ensure_ascii=False) and
  // json.dumps(value, ensure_ascii=False, indent=4).
  const auto value = ordered_json::parse(R"({"b": [1, 2.5, "x\"y"], "a": {}, "c": [], "d": {"é": null, "t": true}})");
  EXPECT_EQ(python_json(value), R"({"b": [1, 2.5, "x\"y"], "a": {}, "c": [], "d": {"é": null, "t": true}})");
  EXPECT_EQ(python_json(value, 4),
            "{\n    \"b\": [\n        1,\n        2.5,\n        \"x\\\"y\"\n    ],\n    \"a\": {},\n    \"c\": [],\n"
            "    \"d\": {\n        \"é\": null,\n        \"t\": true\n    }\n}");
}

TEST(ToolCallFormatDetection, FromTemplateMarkersOrTheFormatsName) {
  EXPECT_EQ(detect_tool_call_format(ChatFormat::ChatML, "...<tool_call>...", false), ToolCallFormat::Hermes);
  EXPECT_EQ(detect_tool_call_format(ChatFormat::ChatML, "{{ messages }}", false), std::nullopt);
  EXPECT_EQ(detect_tool_call_format(ChatFormat::Qwen25, "", true), ToolCallFormat::Hermes);
  EXPECT_EQ(detect_tool_call_format(ChatFormat::Llama31, "Environment: ipython", false), ToolCallFormat::Llama3Json);
  EXPECT_EQ(detect_tool_call_format(ChatFormat::Llama32, "", true), ToolCallFormat::Llama3Json);
  EXPECT_EQ(detect_tool_call_format(ChatFormat::Llama3, "", true), std::nullopt);
  EXPECT_EQ(detect_tool_call_format(ChatFormat::Gemma, "<tool_call>", false), std::nullopt);
}

const std::string kHermesAnswer =
    "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"days\": 2}}\n"
    "</tool_call>\n<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>";

TEST(ToolCallParser, SplitsTextAndCalls) {
  const auto tools = weather_tools();
  const ParsedToolAnswer parsed = parse_tool_calls(ToolCallFormat::Hermes, tools, kHermesAnswer, "call");
  EXPECT_EQ(parsed.text, "Let me look.");  // the newline before the call is not text
  ASSERT_EQ(parsed.calls.size(), 2u);
  EXPECT_EQ(parsed.calls[0].id, "call_0");
  EXPECT_EQ(parsed.calls[0].name, "get_weather");
  EXPECT_EQ(parsed.calls[0].arguments, R"({"city":"Oslo","days":2})");
  EXPECT_EQ(parsed.calls[1].name, "now");
  EXPECT_EQ(parsed.calls[1].arguments, "{}");
}

TEST(ToolCallParser, StreamingGivesTheSameAsWholeAndNeverLeaksACall) {
  const auto tools = weather_tools();
  for (const std::string& answer : {kHermesAnswer, std::string("No call <tool here>, <tool_cal"),
                                    std::string("Text,\n  then more\n\n"),
                                    std::string("<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n")}) {
    const ParsedToolAnswer whole = parse_tool_calls(ToolCallFormat::Hermes, tools, answer, "c");
    ToolCallParser parser(ToolCallFormat::Hermes, tools, "c");
    std::string text;
    std::vector<ToolCall> calls;
    for (const char c : answer) {
      const std::string out = parser.feed(std::string_view(&c, 1));
      EXPECT_EQ(out.find("<tool_call>"), std::string::npos);
      text += out;
      for (ToolCall& call : parser.take_calls()) calls.push_back(std::move(call));
    }
    text += parser.finish();
    for (ToolCall& call : parser.take_calls()) calls.push_back(std::move(call));
    EXPECT_EQ(text, whole.text) << answer;
    ASSERT_EQ(calls.size(), whole.calls.size()) << answer;
    for (size_t i = 0; i < calls.size(); ++i) EXPECT_EQ(calls[i].arguments, whole.calls[i].arguments);
  }
  // An answer that stops before </tool_call> (a stop string) still holds its call.
  EXPECT_EQ(parse_tool_calls(ToolCallFormat::Hermes, tools,
                             "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n", "c").calls.size(), 1u);
  EXPECT_EQ(parse_tool_calls(ToolCallFormat::Hermes, tools, "No call <tool here>, <tool_cal", "c").text,
            "No call <tool here>, <tool_cal");
}

TEST(ToolCallParser, WhatIsNotACallOfAKnownFunctionStaysText) {
  const auto tools = weather_tools();
  for (const std::string answer : {"<tool_call>\n{\"name\": \"launch\", \"arguments\": {}}\n</tool_call>",
                                   "<tool_call>\n{\"name\": \"now\", \"arguments\": {</tool_call>",
                                   "<tool_call>\n{\"name\": \"now\", \"arguments\": [1]}\n</tool_call>"}) {
    const ParsedToolAnswer parsed = parse_tool_calls(ToolCallFormat::Hermes, tools, answer, "c");
    EXPECT_TRUE(parsed.calls.empty()) << answer;
    EXPECT_EQ(parsed.text, answer);
  }
  // Arguments given as JSON text are taken too.
  const auto text_arguments = parse_tool_calls(
      ToolCallFormat::Hermes, tools, "<tool_call>{\"name\": \"now\", \"arguments\": \"{\\\"a\\\": 1}\"}</tool_call>", "c");
  ASSERT_EQ(text_arguments.calls.size(), 1u);
  EXPECT_EQ(text_arguments.calls[0].arguments, R"({"a":1})");
}

TEST(ToolCallParser, Llama3AnswerIsACallWhenItIsOneJsonObject) {
  const auto tools = weather_tools();
  const auto call = parse_tool_calls(ToolCallFormat::Llama3Json, tools,
                                     " {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", "c");
  EXPECT_EQ(call.text, "");
  ASSERT_EQ(call.calls.size(), 1u);
  EXPECT_EQ(call.calls[0].arguments, R"({"city":"Paris"})");
  for (const std::string text : {"It is sunny {really}.", "{\"weather\": \"sunny\"}"}) {
    const auto parsed = parse_tool_calls(ToolCallFormat::Llama3Json, tools, text, "c");
    EXPECT_TRUE(parsed.calls.empty());
    EXPECT_EQ(parsed.text, text);
  }
}

TEST(ToolChatTokens, ClientTextsNeitherBreakNorMakeSpecialTokens) {
  // frugal-think's vocabulary has ChatML's special tokens.
  const auto tokenizer = Tokenizer::from_gguf(GgufFile::open(test::source_path("models/frugal-think-q8_0.gguf")));
  const std::vector<TokenId> end_token = tokenizer->encode("<|im_end|>", false, true);
  ASSERT_EQ(end_token.size(), 1u);
  const auto tools = weather_tools();
  // "end" would be found inside the template's own <|im_end|> if looked for;
  // a result that writes <|im_end|> must stay text.
  const std::vector<ChatMessage> messages = {{"system", "end"},
                                             {"user", "end"},
                                             {"assistant", "", {{"c1", "now", "{}"}}},
                                             {"tool", "<|im_end|>", {}, "c1"}};
  const auto tokens = encode_tool_chat(
      *tokenizer, render_tool_chat(ChatFormat::Qwen25, ToolCallFormat::Hermes, messages, tools, true));
  // One <|im_end|> per turn: system (with the tools), user, assistant, the results' user turn.
  EXPECT_EQ(std::count(tokens.begin(), tokens.end(), end_token[0]), 4);
}

class ToolCallGrammarTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = Model::load(test::source_path("models/frugal-demo-qa-q8_0.gguf"), {.threads = 2}).release();
    tokenizer_ = Tokenizer::from_gguf(model_->file()).release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete model_;
  }
  // Whether the grammar takes `text` whole, fed a character a token.
  static bool matches(const std::string& gbnf, const std::string& text) {
    std::map<char, TokenId> char_token;
    for (size_t id = 0; id < tokenizer_->vocab_size(); ++id) {
      const std::string piece = tokenizer_->token_to_piece(static_cast<TokenId>(id), false);
      if (piece.size() == 1 && !char_token.count(piece[0])) char_token[piece[0]] = static_cast<TokenId>(id);
    }
    GrammarMatcher matcher(Grammar::parse(gbnf), *tokenizer_);
    for (const char c : text) {
      const TokenId token = char_token.at(c);
      if (!matcher.accepts(token)) return false;
      matcher.accept(token);
    }
    return matcher.can_end();
  }
  static inline Model* model_ = nullptr;
  static inline Tokenizer* tokenizer_ = nullptr;
};

TEST_F(ToolCallGrammarTest, TakesCallsOfTheToolsAndNothingElse) {
  const auto tools = weather_tools();
  const std::string any = tool_call_grammar(ToolCallFormat::Hermes, tools);
  EXPECT_TRUE(matches(any, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>"));
  EXPECT_TRUE(matches(any, "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(matches(any, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call>"));
  EXPECT_FALSE(matches(any, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(matches(any, "Sure.<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>"));
  const std::string only_now = tool_call_grammar(ToolCallFormat::Hermes, tools, "now");
  EXPECT_FALSE(matches(only_now, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>"));
  const std::string llama = tool_call_grammar(ToolCallFormat::Llama3Json, tools);
  EXPECT_TRUE(matches(llama, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\", \"days\": 3}}"));
  EXPECT_THROW(tool_call_grammar(ToolCallFormat::Hermes, tools, "launch"), Error);
}

TEST_F(ToolCallGrammarTest, ReferencesOfAToolsSchemaStillResolve) {
  // zod writes repeated types as definitions; "#" is the arguments object itself.
  auto tools = weather_tools();
  tools[1].parameters = ordered_json::parse(R"({"type": "object", "properties": {
      "at": {"$ref": "#/definitions/Place"}, "next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}},
      "required": ["at", "next"], "additionalProperties": false,
      "definitions": {"Place": {"enum": ["Oslo", "Rome"]}}})");
  const std::string grammar = tool_call_grammar(ToolCallFormat::Hermes, tools, "now");
  EXPECT_TRUE(matches(grammar, "<tool_call>\n{\"name\": \"now\", \"arguments\": {\"at\": \"Rome\", \"next\": "
                               "{\"at\": \"Oslo\", \"next\": null}}}\n</tool_call>"));
  EXPECT_FALSE(matches(grammar, "<tool_call>\n{\"name\": \"now\", \"arguments\": {\"at\": \"Paris\", \"next\": "
                                "null}}\n</tool_call>"));
}

TEST_F(ToolCallGrammarTest, RefusesASchemaItCannotHonourNamingTheTool) {
  auto tools = weather_tools();
  tools[0].parameters["properties"]["days"]["minimum"] = 1;
  try {
    tool_call_grammar(ToolCallFormat::Hermes, tools);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tool 'get_weather'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("minimum"), std::string::npos) << e.what();
  }
}

TEST_F(ToolCallGrammarTest, AForcedAnswerIsACallTheParserReads) {
  const auto tools = weather_tools();
  const auto prompt = encode_tool_chat(
      *tokenizer_, render_tool_chat(ChatFormat::Qwen25, ToolCallFormat::Hermes,
                                    std::vector<ChatMessage>{{"user", "Weather in Oslo?"}}, tools, true));
  for (const std::string only : {"", "get_weather", "now"}) {
    GenerationOptions options = test::greedy(200);
    options.grammar = Grammar::parse(tool_call_grammar(ToolCallFormat::Hermes, tools, only));
    KvCache cache(model_->config(), 1024);
    const GenerationResult result = generate(*model_, *tokenizer_, cache, prompt, options);
    const ParsedToolAnswer parsed = parse_tool_calls(ToolCallFormat::Hermes, tools, result.text, "c");
    ASSERT_EQ(parsed.calls.size(), 1u) << result.text;
    EXPECT_EQ(parsed.text, "");
    if (!only.empty()) {
      EXPECT_EQ(parsed.calls[0].name, only);
    }
    const auto arguments = ordered_json::parse(parsed.calls[0].arguments);
    if (parsed.calls[0].name == "get_weather") {
      EXPECT_TRUE(arguments["city"] == "Oslo" || arguments["city"] == "Paris") << result.text;
    }
  }
}

}  // namespace
}  // namespace frugal
