// LoRA adapters chosen per request (llama-server's `lora` field and models
// MODEL+ADAPTER) on the mini model served with one adapter at scale 1: each
// answer equals generate() on a model loaded with the scales it asked for,
// also when answers with other scales share the batch.
#include <gtest/gtest.h>

#include <httplib.h>

#include <future>
#include <thread>

#include <nlohmann/json.hpp>

#include "frugal/chat.h"
#include "frugal/generate.h"
#include "frugal/server.h"
#include "support/greedy_options.h"
#include "support/model_builder.h"
#include "support/test_paths.h"

namespace frugal::test {
namespace {

using nlohmann::json;

class LoraRoutes : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    base_ = shared_path("models/mini-llama-spm-q8_0.gguf");
    adapter_ = write_random_lora(scratch_dir("lora-routes") / "style.gguf", base_,
                                 {"blk.0.attn_q.weight", "blk.1.attn_v.weight", "blk.2.ffn_up.weight",
                                  "blk.3.ffn_down.weight", "output.weight"},
                                 4, 8, 3, 0.3f);
  }

  // The greedy answer of the mini model with the adapter at `scale` (0: none).
  static std::string expected(const std::string& question, float scale) {
    ModelOptions options;
    options.threads = 2;
    if (scale != 0) options.loras = {{adapter_, scale}};
    auto model = Model::load(base_, options);
    auto tokenizer = Tokenizer::from_gguf(model->file());
    const std::vector<ChatMessage> messages = {{"user", question}};
    const auto prompt = encode_chat_prompt(*tokenizer, apply_chat_template(ChatFormat::ChatML, messages, true), messages);
    KvCache cache(model->config(), 512);
    return generate(*model, *tokenizer, cache, prompt, greedy(12)).text;
  }

  void SetUp() override {
    ModelOptions options;
    options.threads = 2;
    options.loras = {{adapter_, 1.0f}};
    model_ = Model::load(base_, options);
    tokenizer_ = Tokenizer::from_gguf(model_->file());
    ServerOptions server;
    server.port = 0;
    server.model_name = "mini";
    server.context = 512;
    server_ = std::make_unique<Server>(*model_, *tokenizer_, server);
    server_->bind();
    thread_ = std::thread([this] { server_->serve(); });
  }
  void TearDown() override {
    server_->stop();
    thread_.join();
  }

  httplib::Result post(const json& body) const {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_read_timeout(60, 0);
    return client.Post("/v1/chat/completions", body.dump(), "application/json");
  }
  static json ask(const std::string& question, const std::string& model = "mini") {
    return {{"model", model}, {"messages", {{{"role", "user"}, {"content", question}}}}, {"max_tokens", 12},
            {"temperature", 0}};
  }
  static std::string text_of(const httplib::Result& response) {
    EXPECT_EQ(response->status, 200) << response->body;
    return json::parse(response->body)["choices"][0]["message"]["content"];
  }

  static inline std::filesystem::path base_, adapter_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

TEST_F(LoraRoutes, EachRequestGetsTheScalesItAsksForEvenInOneBatch) {
  const std::string question = "Name a colour.";
  const std::string loaded = expected(question, 1.0f), none = expected(question, 0.0f), half = expected(question, 0.5f);
  ASSERT_NE(loaded, none);  // the adapter changes the answer
  json off = ask(question), halved = ask(question);
  off["lora"] = json::array({{{"id", 0}, {"scale", 0.0}}});
  halved["lora"] = json::array({{{"id", 0}, {"scale", 0.5}}});
  // Together: the three answers run in the same batch steps.
  auto a = std::async(std::launch::async, [&] { return text_of(post(ask(question))); });
  auto b = std::async(std::launch::async, [&] { return text_of(post(off)); });
  auto c = std::async(std::launch::async, [&] { return text_of(post(halved)); });
  EXPECT_EQ(a.get(), loaded);
  EXPECT_EQ(b.get(), none);
  EXPECT_EQ(c.get(), half);
  // Alone, and through the model name MODEL+ADAPTER (its loaded scale).
  EXPECT_EQ(text_of(post(off)), none);
  EXPECT_EQ(text_of(post(ask(question, "mini+style"))), loaded);
}

TEST_F(LoraRoutes, AdaptersAreListedAndBadChoicesRefused) {
  httplib::Client client("127.0.0.1", server_->port());
  const json adapters = json::parse(client.Get("/lora-adapters")->body);
  ASSERT_EQ(adapters.size(), 1u);
  EXPECT_EQ(adapters[0]["id"], 0);
  EXPECT_EQ(adapters[0]["model"], "mini+style");
  const json models = json::parse(client.Get("/v1/models")->body)["data"];
  EXPECT_EQ(models[1]["id"], "mini+style");
  const auto refused = [&](json body, const std::string& param) {
    const auto response = post(body);
    EXPECT_EQ(response->status, body["model"] == "mini+other" ? 404 : 400) << response->body;
    EXPECT_EQ(json::parse(response->body)["error"]["param"], param) << response->body;
  };
  json unknown = ask("x");
  unknown["lora"] = json::array({{{"id", 1}, {"scale", 1}}});
  refused(unknown, "lora");
  json nan_scale = ask("x");
  nan_scale["lora"] = json::array({{{"id", 0}, {"scale", "high"}}});
  refused(nan_scale, "lora[0].scale");
  json both = ask("x", "mini+style");
  both["lora"] = json::array();
  refused(both, "lora");
  refused(ask("x", "mini+other"), "model");
  json beams = ask("x");
  beams["lora"] = json::array({{{"id", 0}, {"scale", 0.5}}});
  beams["beam_width"] = 2;
  refused(beams, "lora");
}

}  // namespace
}  // namespace frugal::test
