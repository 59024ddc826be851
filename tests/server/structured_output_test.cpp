// Structured output over HTTP: response_format json_object / json_schema and
// llama.cpp's grammar field, whole and streamed, on the shared mini model
// (random weights: only the grammar makes its answers parse), and the 400s
// that name what cannot be honoured.
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>

#include "server_fixture.h"

namespace frugal::test {
namespace {

// Bounded strings and small enums: a random model still ends its answer.
const json kSchema = json::parse(R"({"type": "object", "properties": {
    "ok": {"type": "boolean"}, "kind": {"enum": ["clinic", "school"]},
    "name": {"type": "string", "maxLength": 6}, "beds": {"type": "integer"}},
    "required": ["ok", "kind", "name"], "additionalProperties": false})");

json schema_body(bool stream = false) {
  json body = {{"model", "mini"}, {"messages", {{{"role", "user"}, {"content", "Describe the clinic as JSON."}}}},
               {"temperature", 0}, {"stream", stream}};
  body["max_tokens"] = 200;
  body["response_format"] = {{"type", "json_schema"},
                             {"json_schema", {{"name", "clinic"}, {"schema", kSchema}, {"strict", true}}}};
  return body;
}

void expect_valid(const std::string& text) {
  json value;
  ASSERT_NO_THROW(value = json::parse(text)) << text;
  ASSERT_TRUE(value.is_object()) << text;
  EXPECT_TRUE(value["ok"].is_boolean()) << text;
  EXPECT_TRUE(value["kind"] == "clinic" || value["kind"] == "school") << text;
  ASSERT_TRUE(value["name"].is_string()) << text;
  // maxLength counts characters (code points), not bytes.
  const std::string name = value["name"];
  EXPECT_LE(std::count_if(name.begin(), name.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }),
            6) << text;
  if (value.contains("beds")) {
    EXPECT_TRUE(value["beds"].is_number_integer()) << text;
  }
  for (const auto& [key, item] : value.items()) {
    EXPECT_TRUE(key == "ok" || key == "kind" || key == "name" || key == "beds") << text;
  }
}

TEST_F(ServerTest, JsonSchemaAnswersParseAndValidate) {
  start();
  for (const float temperature : {0.0f, 1.0f}) {
    json body = schema_body();
    body["temperature"] = temperature;
    body["seed"] = 3;
    const auto response = post("/v1/chat/completions", body);
    ASSERT_EQ(response->status, 200) << response->body;
    const json answer = json::parse(response->body);
    EXPECT_EQ(answer["choices"][0]["finish_reason"], "stop");
    expect_valid(answer["choices"][0]["message"]["content"].get<std::string>());
  }
  const auto streamed = post("/v1/chat/completions", schema_body(true));
  ASSERT_EQ(streamed->status, 200);
  expect_valid(stream_text(streamed->body, true));
  // /v1/completions takes it too.
  json completion = {{"model", "mini"}, {"prompt", "JSON:"}, {"max_tokens", 200}, {"temperature", 0},
                     {"response_format", schema_body()["response_format"]}};
  const auto completed = post("/v1/completions", completion);
  ASSERT_EQ(completed->status, 200) << completed->body;
  expect_valid(json::parse(completed->body)["choices"][0]["text"].get<std::string>());
}

TEST_F(ServerTest, JsonObjectAndGrammarFields) {
  start();
  json body = chat_body("Answer.");
  body["max_tokens"] = 40;
  body["grammar"] = R"(root ::= ("yes" | "no") ", " [0-9]{1,3})";
  auto response = post("/v1/chat/completions", body);
  ASSERT_EQ(response->status, 200) << response->body;
  const std::string text = json::parse(response->body)["choices"][0]["message"]["content"];
  EXPECT_TRUE(std::regex_match(text, std::regex("(yes|no), [0-9]{1,3}"))) << text;

  body.erase("grammar");
  body["response_format"] = {{"type", "json_object"}};
  body["max_tokens"] = 60;
  response = post("/v1/chat/completions", body);
  ASSERT_EQ(response->status, 200) << response->body;
  const json answer = json::parse(response->body)["choices"][0];
  // A random model's object may be cut by max_tokens; what came out is a prefix the grammar allowed.
  const std::string content = answer["message"]["content"];
  EXPECT_EQ(content.substr(0, 1), "{") << content;
  if (answer["finish_reason"] == "stop") {
    EXPECT_TRUE(json::parse(content).is_object()) << content;
  }
}

TEST_F(ServerTest, StructuredOutputItCannotHonourIsRefusedByName) {
  start();
  auto refused = [&](const json& body, const std::string& param, const std::string& words) {
    expect_refused(body, param, words);
  };
  json minimum = schema_body();
  minimum["response_format"]["json_schema"]["schema"]["properties"]["beds"]["minimum"] = 0;
  refused(minimum, "response_format.json_schema.schema", "properties.beds.minimum");
  json grammar = chat_body("x");
  grammar["grammar"] = "root ::= missing";
  refused(grammar, "grammar", "never defined");
  json both = schema_body();
  both["grammar"] = R"(root ::= "a")";
  refused(both, "grammar", "either");
  json xml = chat_body("x");
  xml["response_format"] = {{"type", "xml"}};
  refused(xml, "response_format.type", "xml");
  json beams = schema_body();
  beams["beam_width"] = 2;
  refused(beams, "beam_width", "beam");
  json extra = schema_body();
  extra["response_format"]["json_schema"]["examples"] = json::array();
  refused(extra, "response_format.json_schema.examples", "not supported");
}

}  // namespace
}  // namespace frugal::test
