// The OpenAI-compatible server on a loopback port, driven by an HTTP client:
// answers equal direct generation over the same tokens, streams equal
// non-stream answers, knowledge models answer as their cache does, and bad
// requests get OpenAI-style errors with the right status.
#include <gtest/gtest.h>

#include "frugal/quant.h"

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "frugal/beam_search.h"
#include "frugal/chat.h"
#include "frugal/generate.h"
#include "frugal/knowledge_cache.h"
#include "frugal/server.h"
#include "server/openai_api.h"
#include "server/server_fixture.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using nlohmann::json;

using test::ServerTest;

TEST_F(ServerTest, HealthAndModels) {
  start();
  auto health = client_->Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto models = client_->Get("/v1/models");
  ASSERT_TRUE(models);
  const json list = json::parse(models->body);
  ASSERT_EQ(list["data"].size(), 2u);
  EXPECT_EQ(list["data"][0]["id"], "mini");
  EXPECT_EQ(list["data"][1]["id"], "mini@town");
}

TEST_F(ServerTest, ChatAnswerEqualsDirectGenerationAndStreamEqualsNonStream) {
  start();
  // Reference: the same prompt through the library.
  const auto tokens = chat_tokens("Name a colour.");
  GenerationOptions options;
  options.max_tokens = 12;
  options.sampling.temperature = 0;
  KvCache cache(model_->config(), 1024);
  const GenerationResult expected = generate(*model_, *tokenizer_, cache, tokens, options);

  auto result = post("/v1/chat/completions", chat_body("Name a colour."));
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 200) << result->body;
  const json body = json::parse(result->body);
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(body["choices"][0]["message"]["content"], expected.text);
  EXPECT_EQ(body["usage"]["prompt_tokens"], tokens.size());
  EXPECT_EQ(body["usage"]["completion_tokens"], expected.tokens.size());
  EXPECT_EQ(body["choices"][0]["finish_reason"], expected.stop_reason == StopReason::MaxTokens ? "length" : "stop");

  auto streamed = post("/v1/chat/completions", chat_body("Name a colour.", true));
  ASSERT_TRUE(streamed);
  EXPECT_EQ(streamed->status, 200);
  EXPECT_NE(streamed->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  EXPECT_EQ(stream_text(streamed->body, true), expected.text);

  // Completions: plain prompt, both ways.
  const json completion = {{"model", "mini"}, {"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}};
  auto plain = post("/v1/completions", completion);
  ASSERT_TRUE(plain);
  ASSERT_EQ(plain->status, 200) << plain->body;
  const std::string text = json::parse(plain->body)["choices"][0]["text"];
  json streaming = completion;
  streaming["stream"] = true;
  auto plain_stream = post("/v1/completions", streaming);
  ASSERT_TRUE(plain_stream);
  EXPECT_EQ(stream_text(plain_stream->body, false), text);
}

// --cache-type f16: the shared-prefix store keeps F16 rows (half the memory)
// and answers as generation over an F16 cache does; knowledge caches built
// in F32 are converted as they are loaded.
TEST_F(ServerTest, F16StoreAnswersAsAnF16Cache) {
  ServerOptions options;
  options.precision = KvPrecision::F16;
  start(options);
  const auto tokens = chat_tokens("Name a colour.");
  GenerationOptions generation;
  generation.max_tokens = 12;
  generation.sampling.temperature = 0;
  KvCache cache(model_->config(), 1024, KvPrecision::F16);
  const GenerationResult expected = generate(*model_, *tokenizer_, cache, tokens, generation);
  auto result = post("/v1/chat/completions", chat_body("Name a colour."));
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 200) << result->body;
  EXPECT_EQ(json::parse(result->body)["choices"][0]["message"]["content"], expected.text);
  json body = chat_body("Who directs the Harlow Clinic?");
  body["model"] = "mini@town";
  auto knowledge = post("/v1/chat/completions", body);
  ASSERT_TRUE(knowledge);
  EXPECT_EQ(knowledge->status, 200) << knowledge->body;
}

// logprobs: each answer token's log-probability and its top alternatives,
// checked against log-softmax in double of logits from a plain forward pass
// over the prompt and the answer (teacher-forced); the stream carries the
// same entries spread over its chunks; completions use their own format.
TEST_F(ServerTest, LogprobsMatchAForwardPassAndStreamAsTheyAnswer) {
  start();
  json body = chat_body("Name a colour.");
  body["logprobs"] = true;
  body["top_logprobs"] = 3;
  auto result = post("/v1/chat/completions", body);
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 200) << result->body;
  const json answer = json::parse(result->body);
  const json& content = answer["choices"][0]["logprobs"]["content"];
  ASSERT_TRUE(content.is_array());
  ASSERT_GT(content.size(), 0u);
  // The reference: the answer's tokens re-read after the prompt one at a
  // time (as they were generated: batched products round differently).
  std::vector<TokenId> tokens = chat_tokens("Name a colour.");
  GenerationOptions options;
  options.max_tokens = 12;
  options.sampling.temperature = 0;
  KvCache cache(model_->config(), 1024);
  const GenerationResult expected = generate(*model_, *tokenizer_, cache, tokens, options);
  KvCache fresh(model_->config(), 1024);
  std::vector<float> logits = model_->forward(tokens, fresh, false);
  for (size_t i = 0; i + 1 < expected.tokens.size(); ++i) {
    const TokenId one[1] = {expected.tokens[i]};
    const std::vector<float> next = model_->forward(one, fresh, false);
    logits.insert(logits.end(), next.begin(), next.end());
  }
  const size_t vocab = static_cast<size_t>(model_->config().vocab_size);
  std::string joined;
  for (size_t i = 0; i < content.size(); ++i) {
    const float* row = &logits[i * vocab];
    double max = row[0], sum = 0;
    for (size_t v = 0; v < vocab; ++v) max = std::max(max, static_cast<double>(row[v]));
    for (size_t v = 0; v < vocab; ++v) sum += std::exp(row[v] - max);
    const TokenId token = expected.tokens[i];
    EXPECT_NEAR(content[i]["logprob"].get<double>(), row[token] - max - std::log(sum), 2e-3) << i;
    ASSERT_EQ(content[i]["top_logprobs"].size(), 3u);
    EXPECT_EQ(content[i]["top_logprobs"][0]["token"], content[i]["token"]) << "greedy takes the most likely";
    EXPECT_GE(content[i]["top_logprobs"][0]["logprob"].get<double>(), content[i]["top_logprobs"][1]["logprob"].get<double>());
    joined += content[i]["token"].get<std::string>();
  }
  EXPECT_EQ(joined, answer["choices"][0]["message"]["content"]);

  body["stream"] = true;
  auto streamed = post("/v1/chat/completions", body);
  ASSERT_TRUE(streamed);
  json streamed_entries = json::array();
  for (size_t at = 0; (at = streamed->body.find("data: {", at)) != std::string::npos; ++at) {
    const json chunk = json::parse(streamed->body.substr(at + 6, streamed->body.find("\n\n", at) - at - 6));
    if (chunk["choices"].empty() || !chunk["choices"][0].contains("logprobs")) continue;
    for (const auto& entry : chunk["choices"][0]["logprobs"]["content"]) streamed_entries.push_back(entry);
  }
  EXPECT_EQ(streamed_entries, content);

  const json completion = {{"model", "mini"}, {"prompt", "Once upon a time"}, {"max_tokens", 6}, {"temperature", 0},
                           {"logprobs", 2}};
  auto plain = post("/v1/completions", completion);
  ASSERT_TRUE(plain);
  ASSERT_EQ(plain->status, 200) << plain->body;
  const json lp = json::parse(plain->body)["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), lp["token_logprobs"].size());
  ASSERT_EQ(lp["tokens"].size(), lp["text_offset"].size());
  EXPECT_EQ(lp["top_logprobs"][0].size(), 2u);
  EXPECT_EQ(lp["text_offset"][0], 0);

  for (const json& bad : {json{{"model", "mini"}, {"messages", {{{"role", "user"}, {"content", "x"}}}},
                               {"top_logprobs", 2}},
                          json{{"model", "mini"}, {"messages", {{{"role", "user"}, {"content", "x"}}}},
                               {"logprobs", true}, {"top_logprobs", 21}}}) {
    auto refused = post("/v1/chat/completions", bad);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 400) << refused->body;
  }
  auto refused = post("/v1/completions", json{{"model", "mini"}, {"prompt", "x"}, {"logprobs", 6}});
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 400);
}

// /v1/embeddings: Model::embed is the final normed hidden state averaged
// and scaled to length 1; for one token, the output matrix times it must
// give the token's logits up to that length (checked against forward()).
TEST_F(ServerTest, EmbeddingsAreNormedHiddenStatesInOpenAiFormat) {
  start();
  const std::vector<TokenId> one = {42};
  const std::vector<float> e = model_->embed(one);
  KvCache cache(model_->config(), 4);
  const std::vector<float> logits = model_->forward(one, cache);
  const GgufTensor* output = model_->file().find_tensor("output.weight");
  if (!output) output = model_->file().find_tensor("token_embd.weight");
  ASSERT_NE(output, nullptr);
  const size_t width = e.size(), row_bytes = tensor_row_bytes(output->type, width);
  std::vector<float> row(width);
  double xy = 0, yy = 0;
  std::vector<double> dots;
  for (size_t v = 0; v < logits.size(); ++v) {
    dequantize_row(output->type, output->data + v * row_bytes, row.data(), width);
    double dot = 0;
    for (size_t i = 0; i < width; ++i) dot += static_cast<double>(row[i]) * e[i];
    dots.push_back(dot);
    xy += dot * logits[v];
    yy += dot * dot;
  }
  const double length = xy / yy;  // |hidden state|
  for (size_t v = 0; v < logits.size(); ++v) {
    // forward() rounds the hidden state to 8 bits before the Q8_0 product.
    ASSERT_NEAR(logits[v], length * dots[v], 0.15 + 0.02 * std::fabs(logits[v])) << v;
  }

  auto result = post("/v1/embeddings", {{"model", "mini"}, {"input", {"The clinic opens at 9.", "Rain."}}});
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 200) << result->body;
  const json body = json::parse(result->body);
  ASSERT_EQ(body["data"].size(), 2u);
  const std::vector<float> rain = body["data"][1]["embedding"];
  EXPECT_EQ(rain, model_->embed(tokenizer_->encode("Rain.", true, false)));
  EXPECT_EQ(body["usage"]["prompt_tokens"], tokenizer_->encode("The clinic opens at 9.", true, false).size() +
                                                tokenizer_->encode("Rain.", true, false).size());
  for (const json& bad : {json{{"model", "mini"}, {"input", json::array()}},
                          json{{"model", "mini"}, {"input", "x"}, {"dimensions", 8}},
                          json{{"model", "mini"}, {"input", "x"}, {"encoding_format", "int8"}}}) {
    auto refused = post("/v1/embeddings", bad);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 400) << bad.dump();
  }
}

// --context-shift: an answer asking for more tokens than the context holds
// goes on past it, shifted in the shared store as generate() shifts a
// KvCache, token for token; the response says how many times.
TEST_F(ServerTest, ContextShiftGoesOnPastTheContextAsGenerateDoes) {
  ServerOptions options;
  options.context = 96;  // the fixture's knowledge cache needs 74
  options.context_shift = true;
  start(options);
  const std::vector<TokenId> prompt = tokenizer_->encode("The clinic opens", true, false);
  GenerationOptions generation;
  generation.max_tokens = 250;
  generation.sampling.temperature = 0;
  generation.context_shift = true;
  KvCache cache(model_->config(), 96);
  const GenerationResult expected = generate(*model_, *tokenizer_, cache, prompt, generation);
  ASSERT_GT(expected.context_shifts, 0u) << "the model ended before the context filled: pick another prompt";
  auto result = post("/v1/completions", {{"model", "mini"}, {"prompt", "The clinic opens"}, {"max_tokens", 250},
                                         {"temperature", 0}});
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 200) << result->body;
  const json body = json::parse(result->body);
  EXPECT_EQ(body["choices"][0]["text"], expected.text);
  EXPECT_EQ(body["usage"]["completion_tokens"], expected.tokens.size());
  EXPECT_EQ(body["choices"][0]["context_shifts"], expected.context_shifts);
}

TEST_F(ServerTest, KnowledgeModelAnswersAsItsCache) {
  start();
  KnowledgeLoadOptions load;
  load.context = 1024;
  KnowledgeCache cache = KnowledgeCache::load(dir_ / "town.fkv", *model_, *tokenizer_, load);
  GenerationOptions options;
  options.max_tokens = 12;
  options.sampling.temperature = 0;
  options.sampling.top_k = 0;
  options.sampling.min_p = 0;
  options.trim_leading_space = true;  // an answer after "Answer:" starts at its first visible character
  const GenerationResult expected = cache.ask("Who directs the Harlow Clinic?", options);
  json body = chat_body("Who directs the Harlow Clinic?");
  body["model"] = "mini@town";
  auto result = post("/v1/chat/completions", body);
  ASSERT_TRUE(result);
  ASSERT_EQ(result->status, 200) << result->body;
  const json answer = json::parse(result->body);
  EXPECT_EQ(answer["choices"][0]["message"]["content"], expected.text);
  EXPECT_EQ(answer["usage"]["prompt_tokens_details"]["cached_tokens"], cache.tokens().size());
}

// Continuous batching: requests that arrive together are answered in one
// batch (fewer forward passes than tokens fed), each with the answer it gets
// alone, and `n` choices are sequences of the same batch.
TEST_F(ServerTest, ConcurrentRequestsAreBatchedAndAnswerAsAlone) {
  ServerOptions options;
  options.parallel = 4;
  start(options);
  const std::vector<std::string> questions = {"Name a colour.", "Count to five.", "Say hello.", "Name a fruit.",
                                              "Name a city.", "Name a tree."};
  // Long answers, so that the requests sent together overlap.
  const auto long_body = [](const std::string& q, bool stream) {
    json body = chat_body(q, stream);
    body["max_tokens"] = 64;
    return body;
  };
  const auto counter = [](const std::string& metrics, const std::string& name) {
    const size_t at = metrics.find("\n" + name + " ");
    return at == std::string::npos ? -1.0 : std::stod(metrics.substr(at + name.size() + 2));
  };
  const auto start_metrics = client_->Get("/metrics")->body;
  std::vector<std::string> alone;
  for (const auto& q : questions) {
    auto r = post("/v1/chat/completions", long_body(q, false));
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    alone.push_back(json::parse(r->body)["choices"][0]["message"]["content"]);
  }
  const auto before = client_->Get("/metrics")->body;
  std::vector<std::string> together(questions.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < questions.size(); ++i) {
    clients.emplace_back([&, i] {
      httplib::Client client("127.0.0.1", server_->port());
      client.set_read_timeout(60, 0);
      json body = long_body(questions[i], i % 2 == 1);
      auto r = client.Post("/v1/chat/completions", body.dump(), "application/json");
      if (!r || r->status != 200) return;
      together[i] = i % 2 == 1 ? stream_text(r->body, true)
                               : json::parse(r->body)["choices"][0]["message"]["content"].get<std::string>();
    });
  }
  for (auto& c : clients) c.join();
  for (size_t i = 0; i < questions.size(); ++i) EXPECT_EQ(together[i], alone[i]) << questions[i];
  const auto after = client_->Get("/metrics")->body;
  const double steps_alone =
      counter(before, "frugal_batch_steps_total") - counter(start_metrics, "frugal_batch_steps_total");
  const double steps_together = counter(after, "frugal_batch_steps_total") - counter(before, "frugal_batch_steps_total");
  std::cout << "[ batching ] forward passes: " << steps_alone << " one request at a time, " << steps_together
            << " sent together\n";
  EXPECT_GT(steps_together, 0);
  EXPECT_LT(steps_together, 0.8 * steps_alone) << "requests sent together should share forward passes";

  // n = 3 seeded samples: three choices, the same three again for the same seed.
  json body = chat_body("Tell a story.");
  body["n"] = 3;
  body["temperature"] = 1.0;
  body["seed"] = 42;
  auto first = post("/v1/chat/completions", body), second = post("/v1/chat/completions", body);
  ASSERT_TRUE(first && second);
  ASSERT_EQ(first->status, 200) << first->body;
  const json a = json::parse(first->body), b = json::parse(second->body);
  ASSERT_EQ(a["choices"].size(), 3u);
  EXPECT_EQ(a["choices"], b["choices"]);
  EXPECT_NE(a["choices"][0]["message"]["content"], a["choices"][1]["message"]["content"]);
}

// The beam_width extension: the n best beams of frugal's trie beam search.
TEST_F(ServerTest, BeamWidthAnswersWithTheBestBeams) {
  start();
  const auto tokens = chat_tokens("Name a colour.");
  BeamSearchOptions beam;
  beam.beam_width = 3;
  beam.max_new_tokens = 10;
  beam.num_return_sequences = 2;
  const BeamSearchResult expected = make_trie_beam_search()->run(*model_, *tokenizer_, tokens, beam);
  ASSERT_EQ(expected.hypotheses.size(), 2u);

  json body = chat_body("Name a colour.");
  body["max_tokens"] = 10;
  body["beam_width"] = 3;
  body["n"] = 2;
  auto r = post("/v1/chat/completions", body);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json answer = json::parse(r->body);
  ASSERT_EQ(answer["choices"].size(), 2u);
  size_t completion_tokens = 0;
  for (size_t i = 0; i < 2; ++i) {
    const auto& h = expected.hypotheses[i].tokens;
    const bool ended = tokenizer_->is_end_of_generation(h.back());
    EXPECT_EQ(answer["choices"][i]["message"]["content"],
              tokenizer_->decode(std::span<const TokenId>(h).first(h.size() - (ended ? 1 : 0))));
    EXPECT_EQ(answer["choices"][i]["finish_reason"], ended ? "stop" : "length");
    completion_tokens += h.size();
  }
  EXPECT_EQ(answer["usage"]["completion_tokens"], completion_tokens);
  EXPECT_EQ(answer["usage"]["prompt_tokens"], tokens.size());

  body["stream"] = true;
  r = post("/v1/chat/completions", body);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  body["stream"] = false;
  body["n"] = 4;
  r = post("/v1/chat/completions", body);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"]["param"], "n");
}

TEST_F(ServerTest, BadRequestsGetOpenAiErrors) {
  ServerOptions options;
  options.api_key = "secret";
  options.max_body_bytes = 4096;
  start(options);
  auto expect_error = [&](const httplib::Result& r, int status, const std::string& fragment) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << r->body;
    const json body = json::parse(r->body);
    ASSERT_TRUE(body.contains("error")) << r->body;
    EXPECT_NE(body["error"]["message"].get<std::string>().find(fragment), std::string::npos) << r->body;
  };
  expect_error(post("/v1/chat/completions", chat_body("hi")), 401, "API key");
  expect_error(post("/v1/chat/completions", chat_body("hi"), "wrong"), 401, "API key");
  expect_error(client_->Post("/v1/chat/completions", {{"Authorization", "Bearer secret"}}, "{not json", "application/json"),
               400, "not valid JSON");
  json wrong_type = chat_body("hi");
  wrong_type["temperature"] = "hot";
  expect_error(post("/v1/chat/completions", wrong_type, "secret"), 400, "temperature");
  json unknown = chat_body("hi");
  unknown["model"] = "gpt-9";
  expect_error(post("/v1/chat/completions", unknown, "secret"), 404, "does not exist");
  json no_messages = chat_body("hi");
  no_messages["messages"] = json::array();
  expect_error(post("/v1/chat/completions", no_messages, "secret"), 400, "messages");
  std::string long_text;
  for (int i = 0; i < 1000; ++i) long_text += "word ";  // 5000 bytes: over the 4096-byte limit
  expect_error(post("/v1/chat/completions", chat_body(long_text), "secret"), 413, "too large");
  expect_error(client_->Get("/v1/nothing"), 404, "no route");
  // The server is still up.
  auto ok = post("/v1/chat/completions", chat_body("hi"), "secret");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  // Metrics are behind the key too, and count what happened.
  expect_error(client_->Get("/metrics"), 401, "API key");
  const std::string metrics = client_->Get("/metrics", {{"Authorization", "Bearer secret"}})->body;
  EXPECT_NE(metrics.find("frugal_requests_total{endpoint=\"/v1/chat/completions\",code=\"401\"} 2"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("frugal_time_to_first_token_seconds_count 1"), std::string::npos) << metrics;
}

TEST_F(ServerTest, PromptOverTheContextIsRefused) {
  start();
  std::string text;
  for (int i = 0; i < 1200; ++i) text += "a b ";
  auto r = post("/v1/completions", {{"model", "mini"}, {"prompt", text}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "context_length_exceeded");
}

TEST_F(ServerTest, AFullQueueAnswers429) {
  ServerOptions options;
  options.parallel = 1;
  options.queue_limit = 0;  // nothing may wait behind the running request
  start(options);
  json body = chat_body("Tell a long story.", true);
  body["max_tokens"] = 400;
  std::thread slow([&] {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_read_timeout(60, 0);
    client.Post("/v1/chat/completions", body.dump(), "application/json");
  });
  // Wait until it generates.
  for (int i = 0; i < 500; ++i) {
    if (client_->Get("/metrics")->body.find("frugal_requests_running 1") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto refused = post("/v1/chat/completions", chat_body("hi"));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 429);
  EXPECT_EQ(json::parse(refused->body)["error"]["code"], "queue_full");
  server_->stop();  // cancels the long answer at its next token
  slow.join();
}

TEST_F(ServerTest, AClientThatGoesAwayCancelsItsAnswer) {
  start();
  // A raw connection: send a streaming request, read the first bytes, hang up.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(server_->port()));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  json body = chat_body("Tell a long story.", true);
  body["max_tokens"] = 2000;
  const std::string payload = body.dump();
  const std::string request = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                              "application/json\r\nContent-Length: " + std::to_string(payload.size()) +
                              "\r\n\r\n" + payload;
  ASSERT_EQ(::send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  char buffer[256];
  ASSERT_GT(::recv(fd, buffer, sizeof buffer, 0), 0);  // headers and the first chunk are coming
  ::close(fd);
  // The generation stops at the next token it cannot deliver: far fewer than 2000.
  std::string metrics;
  for (int i = 0; i < 2000; ++i) {
    metrics = client_->Get("/metrics")->body;
    if (metrics.find("frugal_requests_running 0") != std::string::npos &&
        metrics.find("frugal_time_to_first_token_seconds_count 1") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_NE(metrics.find("frugal_requests_running 0"), std::string::npos) << metrics;
  const std::string key = "\nfrugal_completion_tokens_total ";
  const size_t at = metrics.find(key);
  ASSERT_NE(at, std::string::npos);
  EXPECT_LT(std::stoul(metrics.substr(at + key.size())), 1000u) << metrics;
  // And the server answers the next request as usual.
  auto ok = post("/v1/chat/completions", chat_body("hi"));
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_F(ServerTest, AKnowledgeFolderIsListedAndLoadedOnFirstUse) {
  const auto folder = dir_ / "kb-folder";
  std::filesystem::remove_all(folder);
  std::filesystem::create_directories(folder);
  std::filesystem::copy_file(dir_ / "town.fkv", folder / "city.fkv");
  ServerOptions options;
  options.knowledge_dir = folder;
  start(options);
  const json models = json::parse(client_->Get("/v1/models")->body);
  std::vector<std::string> ids;
  for (const auto& m : models["data"]) ids.push_back(m["id"]);
  EXPECT_NE(std::find(ids.begin(), ids.end(), "mini@city"), ids.end()) << models.dump();
  EXPECT_EQ(client_->Get("/metrics")->body.find("frugal_knowledge_load_seconds{knowledge=\"city\"}"), std::string::npos);
  // Asked for, it loads and answers as the same cache given with --kb does.
  auto ask = [&](const std::string& model) {
    json body = {{"model", model}, {"messages", {{{"role", "user"}, {"content", "Who directs the Harlow Clinic?"}}}},
                 {"max_tokens", 8}, {"temperature", 0}};
    auto r = post("/v1/chat/completions", body);
    EXPECT_EQ(r->status, 200) << r->body;
    return json::parse(r->body);
  };
  const json from_folder = ask("mini@city"), from_flag = ask("mini@town");
  EXPECT_EQ(from_folder["choices"][0]["message"]["content"], from_flag["choices"][0]["message"]["content"]);
  // Both read their knowledge from the store (the second also the question: the two caches are copies
  // of one file, so their prompts are one path in the store).
  EXPECT_GT(from_folder["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 0);
  EXPECT_GE(from_flag["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(),
            from_folder["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>());
  const std::string metrics = client_->Get("/metrics")->body;
  EXPECT_NE(metrics.find("frugal_knowledge_load_seconds{knowledge=\"city\"}"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("frugal_knowledge_requests_total{knowledge=\"city\"} 1"), std::string::npos) << metrics;
  // A name that is not in the folder, or not a plain name, is no model.
  EXPECT_EQ(post("/v1/chat/completions", {{"model", "mini@nowhere"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}})->status, 404);
  EXPECT_EQ(post("/v1/chat/completions", {{"model", "mini@../town"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}})->status, 404);
}

TEST_F(ServerTest, EveryRequestFieldIsHonouredOrRefused) {
  start();
  auto status_of = [&](const std::string& field, const json& value) {
    json body = chat_body("hi");
    body[field] = value;
    auto r = post("/v1/chat/completions", body);
    if (r->status == 400) {
      EXPECT_EQ(json::parse(r->body)["error"]["param"], field) << r->body;
    }
    return r->status;
  };
  EXPECT_EQ(status_of("tools", json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}})), 400);
  EXPECT_EQ(status_of("logprobs", "yes"), 400);  // honoured now (LogprobsMatch...), but typed
  EXPECT_EQ(status_of("response_format", {{"type", "json_object"}}), 200);  // honoured now (structured_output_test)
  EXPECT_EQ(status_of("response_format", "json"), 400);
  EXPECT_EQ(status_of("frequency_penalty", 0.5), 400);
  EXPECT_EQ(status_of("made_up_field", 1), 400);
  // Values that ask for nothing frugal lacks, and client bookkeeping, pass.
  EXPECT_EQ(status_of("frequency_penalty", 0), 200);
  EXPECT_EQ(status_of("logprobs", false), 200);
  EXPECT_EQ(status_of("response_format", {{"type", "text"}}), 200);
  EXPECT_EQ(status_of("user", "someone"), 200);
}

TEST_F(ServerTest, WithoutMaxTokensAnAnswerRunsToItsEndAndReusedPromptsAreReported) {
  start();
  json body = chat_body("Tell a long story.");
  body.erase("max_tokens");
  const json long_answer = json::parse(post("/v1/chat/completions", body)->body);
  EXPECT_GT(long_answer["usage"]["completion_tokens"].get<int>(), 256) << long_answer["usage"];  // the old default
  // The same prompt again: its beginning is still in the prefix cache.
  body["max_tokens"] = 4;
  const json again = json::parse(post("/v1/chat/completions", body)->body);
  ASSERT_TRUE(again["usage"].contains("prompt_tokens_details")) << again.dump();
  EXPECT_GT(again["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>(), 0);
}

TEST(OpenAiRequests, ParsingAndValidation) {
  using server::parse_completion_request;
  const auto r = parse_completion_request(
      R"({"model": "m", "messages": [{"role": "system", "content": "Be brief."},
          {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}],
          "max_tokens": 5, "temperature": 0.5, "top_p": 0.9, "stop": ["\n", "END"], "seed": 7, "n": 2})", true);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[1].content, "Hi there");
  EXPECT_EQ(r.max_tokens, 5);
  EXPECT_FLOAT_EQ(r.temperature, 0.5f);
  EXPECT_EQ(r.stop.size(), 2u);
  EXPECT_EQ(*r.seed, 7u);
  EXPECT_EQ(r.n, 2);
  auto param_of = [](const std::string& body) {
    try {
      server::parse_completion_request(body, true);
    } catch (const server::ApiError& e) {
      return e.param;
    }
    return std::string("(accepted)");
  };
  EXPECT_EQ(param_of(R"({"messages": [{"role": "user", "content": "x"}]})"), "model");
  EXPECT_EQ(param_of(R"({"model": "m", "messages": [{"role": "robot", "content": "x"}]})"), "messages[0].role");
  EXPECT_EQ(param_of(R"({"model": "m", "messages": [{"role": "user", "content": 3}]})"), "messages[0].content");
  EXPECT_EQ(param_of(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0})"), "max_tokens");
  EXPECT_EQ(param_of(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3})"),
            "temperature");
  EXPECT_EQ(param_of(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]})"), "stop");
  EXPECT_EQ(param_of(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2, "stream": true})"), "n");
  EXPECT_EQ(param_of(R"({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5})"),
            "max_tokens");
}

}  // namespace
}  // namespace frugal
