// POST /v1/responses against the chat completion of the same messages (the
// same engine path): the same text, whole and as Responses events in their
// order; text.format for structured output; 400s that name the Responses
// API's own fields.
#include <gtest/gtest.h>

#include "server_fixture.h"

namespace frugal::test {
namespace {

std::vector<json> events_of(const std::string& body) {
  std::vector<json> events;
  size_t at = 0;
  while ((at = body.find("data: ", at)) != std::string::npos) {
    const size_t end = body.find("\n\n", at);
    events.push_back(json::parse(body.substr(at + 6, end - at - 6)));
    at = end;
  }
  return events;
}

TEST_F(ServerTest, ResponsesAnswerAsChatDoesWholeAndStreamed) {
  start();
  json chat = chat_body("Name a colour.");
  chat["max_tokens"] = 10;
  const std::string expected =
      json::parse(post("/v1/chat/completions", chat)->body)["choices"][0]["message"]["content"];
  const json request = {{"model", "mini"}, {"input", "Name a colour."}, {"max_output_tokens", 10}, {"temperature", 0}};
  const auto whole = post("/v1/responses", request);
  ASSERT_EQ(whole->status, 200) << whole->body;
  const json reply = json::parse(whole->body);
  EXPECT_EQ(reply["object"], "response");
  EXPECT_EQ(reply["output"][0]["type"], "message");
  EXPECT_EQ(reply["output"][0]["content"][0]["text"], expected);
  EXPECT_EQ(reply["status"], reply["usage"]["output_tokens"] == 10 ? "incomplete" : "completed");

  json streamed_request = request;
  streamed_request["stream"] = true;
  streamed_request["input"] = json::array({{{"role", "user"}, {"content", {{{"type", "input_text"}, {"text", "Name a colour."}}}}}});
  const auto streamed = post("/v1/responses", streamed_request);
  ASSERT_EQ(streamed->status, 200);
  const auto events = events_of(streamed->body);
  ASSERT_GE(events.size(), 8u);
  std::vector<std::string> order;
  std::string text;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i]["sequence_number"], i);
    const std::string type = events[i]["type"];
    if (type == "response.output_text.delta") {
      text += events[i]["delta"].get<std::string>();
      if (order.back() == type) continue;
    }
    order.push_back(type);
  }
  const std::vector<std::string> expected_order = {
      "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
      "response.output_text.delta", "response.output_text.done", "response.content_part.done",
      "response.output_item.done", reply["status"] == "completed" ? "response.completed" : "response.incomplete"};
  EXPECT_EQ(order, expected_order);
  EXPECT_EQ(text, expected);
  EXPECT_EQ(events.back()["response"]["output"][0]["content"][0]["text"], expected);
}

TEST_F(ServerTest, ResponsesTextFormatAndErrors) {
  start();
  const json schema = json::parse(R"({"type": "object", "properties": {"ok": {"type": "boolean"},
      "kind": {"enum": ["a", "b"]}}, "required": ["ok", "kind"], "additionalProperties": false})");
  json request = {{"model", "mini"}, {"input", "JSON please"}, {"max_output_tokens", 100}, {"temperature", 0},
                  {"text", {{"format", {{"type", "json_schema"}, {"name", "x"}, {"schema", schema}, {"strict", true}}}}}};
  const auto response = post("/v1/responses", request);
  ASSERT_EQ(response->status, 200) << response->body;
  const json value = json::parse(json::parse(response->body)["output"][0]["content"][0]["text"].get<std::string>());
  EXPECT_TRUE(value["ok"].is_boolean());

  auto refused = [&](const json& fields, const std::string& param) {
    json body = {{"model", "mini"}, {"input", "hi"}};
    body.update(fields);
    const auto r = post("/v1/responses", body);
    ASSERT_EQ(r->status, 400) << fields;
    EXPECT_EQ(json::parse(r->body)["error"]["param"], param) << r->body;
  };
  json minimum = request;
  minimum["text"]["format"]["schema"]["properties"]["ok"] = {{"type", "integer"}, {"minimum", 1}};
  refused({{"text", minimum["text"]}}, "text.format.schema");
  refused({{"previous_response_id", "resp_1"}}, "previous_response_id");
  refused({{"input", json::array({{{"type", "function_call_output"}, {"call_id", "c"}, {"output", "1"}}})}},
          "input[0].type");
  refused({{"max_output_tokens", 0}}, "max_output_tokens");
  refused({{"tools", json::array({{{"type", "function"}, {"name", "f"}}})}}, "tools");
  const auto unknown = post("/v1/responses", {{"model", "nope"}, {"input", "hi"}});
  EXPECT_EQ(unknown->status, 404);
  EXPECT_EQ(json::parse(unknown->body)["error"]["param"], "model");
}

}  // namespace
}  // namespace frugal::test
