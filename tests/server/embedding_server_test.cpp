// `frugal serve --embedding` as a library: a random BERT file with the BGE
// vocabulary served by EmbeddingServer; its vectors are the encoder's, in
// both of OpenAI's encodings and Ollama's shape, and it refuses what it
// does not do.
#include <gtest/gtest.h>

#include <httplib.h>

#include <cstring>
#include <thread>

#include <nlohmann/json.hpp>

#include "frugal/encoder.h"
#include "frugal/server.h"
#include "support/model_builder.h"
#include "support/test_paths.h"

namespace frugal::test {
namespace {

using nlohmann::json;

// OpenAI's base64 encoding back to floats.
std::vector<float> from_base64(const std::string& text) {
  static const std::string kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes;
  uint32_t buffer = 0;
  int bits = 0;
  for (const char c : text) {
    if (c == '=') break;
    buffer = (buffer << 6) | static_cast<uint32_t>(kAlphabet.find(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

class EmbeddingServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto path = write_random_bert(scratch_dir("embedding-server") / "bge-random.gguf", TensorType::Q8_0, 32, 2,
                                        2, 32);
    encoder_ = EncoderModel::load(path, 2).release();
    tokenizer_ = Tokenizer::from_gguf(encoder_->file()).release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete encoder_;
  }

  void start(ServerOptions options = {}) {
    options.port = 0;
    server_ = std::make_unique<EmbeddingServer>(*encoder_, *tokenizer_, options);
    server_->bind();
    thread_ = std::thread([this] { server_->serve(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }
  httplib::Result post(const std::string& path, const json& body) {
    return client_->Post(path, body.dump(), "application/json");
  }

  static inline EncoderModel* encoder_ = nullptr;
  static inline Tokenizer* tokenizer_ = nullptr;
  std::unique_ptr<EmbeddingServer> server_;
  std::thread thread_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(EmbeddingServerTest, VectorsAreTheEncodersInEveryShape) {
  start();
  const std::vector<std::string> texts = {"The clinic opens at 9.", "Rain in Oslo"};
  const auto floats = post("/v1/embeddings", {{"model", "bge-random"}, {"input", texts}});
  ASSERT_EQ(floats->status, 200) << floats->body;
  const json reply = json::parse(floats->body);
  ASSERT_EQ(reply["data"].size(), 2u);
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<float> expected = encoder_->embed(tokenizer_->encode(texts[i], true, false));
    EXPECT_EQ(reply["data"][i]["embedding"].get<std::vector<float>>(), expected);
  }
  EXPECT_EQ(reply["usage"]["prompt_tokens"],
            tokenizer_->encode(texts[0], true, false).size() + tokenizer_->encode(texts[1], true, false).size());
  const auto base64 = post("/v1/embeddings", {{"model", "bge-random"}, {"input", texts[1]}, {"encoding_format", "base64"}});
  ASSERT_EQ(base64->status, 200);
  EXPECT_EQ(from_base64(json::parse(base64->body)["data"][0]["embedding"]),
            reply["data"][1]["embedding"].get<std::vector<float>>());
  const auto ollama = post("/api/embed", {{"model", "bge-random:latest"}, {"input", texts}});
  ASSERT_EQ(ollama->status, 200) << ollama->body;
  EXPECT_EQ(json::parse(ollama->body)["embeddings"][0], reply["data"][0]["embedding"]);
  const auto models = client_->Get("/v1/models");
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "bge-random");
}

TEST_F(EmbeddingServerTest, OllamaTruncatesLongInputsAsOllamaDoes) {
  start();
  std::string long_text;
  for (int i = 0; i < 40; ++i) long_text += "word ";  // over the 32 positions
  const auto cut = post("/api/embed", {{"model", "bge-random"}, {"input", long_text}});
  ASSERT_EQ(cut->status, 200) << cut->body;
  std::vector<TokenId> tokens = tokenizer_->encode(long_text, true, false);
  const TokenId end = tokens.back();
  tokens.resize(32);
  tokens.back() = end;  // [SEP] kept
  EXPECT_EQ(json::parse(cut->body)["embeddings"][0].get<std::vector<float>>(), encoder_->embed(tokens));
  EXPECT_EQ(post("/api/embed", {{"model", "bge-random"}, {"input", long_text}, {"truncate", false}})->status, 400);
  EXPECT_EQ(post("/api/embed", {{"model", "bge-random"}, {"input", "x"}, {"options", {{"num_ctx", 8}}}})->status, 400);
}

TEST_F(EmbeddingServerTest, RefusesWhatItDoesNotDo) {
  ServerOptions options;
  options.api_key = "secret";
  start(options);
  EXPECT_EQ(post("/v1/embeddings", {{"model", "bge-random"}, {"input", "x"}})->status, 401);
  client_->set_bearer_token_auth("secret");
  const auto chat = post("/v1/chat/completions", {{"model", "bge-random"}, {"messages", json::array()}});
  EXPECT_EQ(chat->status, 400);
  EXPECT_NE(chat->body.find("does not generate"), std::string::npos);
  EXPECT_EQ(post("/v1/embeddings", {{"model", "other"}, {"input", "x"}})->status, 404);
  EXPECT_EQ(post("/v1/embeddings", {{"model", "bge-random"}, {"input", std::string(200, 'a') + " b c d e f g h i j k l m "
                                                                                  "n o p q r s t u v w x y z a b c d e f"}})
                ->status,
            400);  // over the 32 positions
  EXPECT_EQ(post("/v1/embeddings", {{"model", "bge-random"}, {"input", "x"}, {"dimensions", 8}})->status, 400);
}

}  // namespace
}  // namespace frugal::test
