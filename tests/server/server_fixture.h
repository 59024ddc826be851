// A frugal::Server on a loopback port over the shared mini model, with a
// knowledge cache "town", and an HTTP client for it (the server tests' fixture).
#pragma once

#include <gtest/gtest.h>

#include <httplib.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "frugal/chat.h"
#include "frugal/knowledge_cache.h"
#include "frugal/server.h"
#include "support/test_paths.h"

namespace frugal::test {

using nlohmann::json;

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = Model::load(shared_path("models/mini-llama-spm-q8_0.gguf"), {.threads = 2}).release();
    tokenizer_ = Tokenizer::from_gguf(model_->file()).release();
    dir_ = scratch_dir("server");
    KnowledgeBuildOptions build;
    build.context = 1024;
    std::vector<Document> docs = {{"clinic", "Harlow Clinic", "The Harlow Clinic is directed by Dr. Mira Osei."},
                                  {"school", "Brook School", "The Brook School has 340 pupils."}};
    KnowledgeCache::build(*model_, *tokenizer_, docs, build).save(dir_ / "town.fkv");
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete model_;
  }

  void start(ServerOptions options = {}) {
    options.port = 0;
    options.model_name = "mini";
    if (options.context == 0) options.context = 1024;
    options.knowledge = {{"town", dir_ / "town.fkv"}};
    server_ = std::make_unique<Server>(*model_, *tokenizer_, options);
    server_->bind();
    thread_ = std::thread([this] { server_->serve(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(60, 0);
  }

  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }

  httplib::Result post(const std::string& path, const json& body, const std::string& key = "") {
    httplib::Headers headers;
    if (!key.empty()) headers.emplace("Authorization", "Bearer " + key);
    return client_->Post(path, headers, body.dump(), "application/json");
  }

  // The prompt the server builds for one user message (ChatML: the model has no template).
  static std::vector<TokenId> chat_tokens(const std::string& content) {
    const std::vector<ChatMessage> messages = {{"user", content}};
    return encode_chat_prompt(*tokenizer_, apply_chat_template(ChatFormat::ChatML, messages, true), messages);
  }

  static json chat_body(const std::string& content, bool stream = false) {
    return {{"model", "mini"}, {"messages", {{{"role", "user"}, {"content", content}}}},
            {"max_tokens", 12}, {"temperature", 0}, {"stream", stream}};
  }

  // A chat request refused with a 400 whose param is `param` and whose
  // message says `words`.
  void expect_refused(const json& body, const std::string& param, const std::string& words) {
    const auto response = post("/v1/chat/completions", body);
    ASSERT_EQ(response->status, 400) << body.dump();
    const json error = json::parse(response->body)["error"];
    EXPECT_EQ(error["param"], param) << response->body;
    EXPECT_NE(error["message"].get<std::string>().find(words), std::string::npos) << response->body;
  }

  // POSTs a chat request on a connection of its own, handing each piece of
  // the response to `receive` as it arrives (for streams watched live).
  httplib::Result post_streaming(const json& body, const std::function<void(const char*, size_t)>& receive,
                                 httplib::Headers headers = {}) const {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_read_timeout(60, 0);
    httplib::Request request;
    request.method = "POST";
    request.path = "/v1/chat/completions";
    request.headers = std::move(headers);
    request.headers.emplace("Content-Type", "application/json");
    request.body = body.dump();
    request.content_receiver = [&](const char* data, size_t size, uint64_t, uint64_t) {
      receive(data, size);
      return true;
    };
    return client.send(request);
  }

  // Concatenated text of an SSE response, checking its framing.
  static std::string stream_text(const std::string& body, bool chat) {
    std::string text;
    size_t at = 0;
    bool done = false;
    while ((at = body.find("data: ", at)) != std::string::npos) {
      const size_t end = body.find("\n\n", at);
      const std::string data = body.substr(at + 6, end - at - 6);
      at = end;
      if (data == "[DONE]") {
        done = true;
        continue;
      }
      const json chunk = json::parse(data);
      const json& choice = chunk["choices"][0];
      if (chat && choice["delta"].contains("content")) text += choice["delta"]["content"].get<std::string>();
      if (!chat) text += choice["text"].get<std::string>();
    }
    EXPECT_TRUE(done) << "no [DONE] event";
    return text;
  }

  static inline Model* model_ = nullptr;
  static inline Tokenizer* tokenizer_ = nullptr;
  static inline std::filesystem::path dir_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace frugal::test
