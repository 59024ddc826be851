// The committed demo model (models/frugal-demo-qa-q8_0.gguf) against
// PyTorch, the framework that trained it: frugal's greedy continuation of
// five fixed prompts equals PyTorch's float32 greedy continuation token for
// token (tests/model/demo_model_greedy.json, written by
// tools/train_demo_model.py). The training export lies on the Q8_0 grid, so
// the F32 model rebuilt from the committed file holds PyTorch's weights
// exactly; the Q8_0 file itself must give the same answers to the knowledge
// prompts.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include "frugal/model.h"
#include "frugal/quantize.h"
#include "frugal/tokenizer.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

struct GreedyPrompt {
  std::string text;
  std::vector<TokenId> tokens;
  std::vector<TokenId> greedy;  // ends with EOS when the model stopped
};

std::vector<GreedyPrompt> read_fixture(TokenId& eos, size_t& max_tokens) {
  std::ifstream in(test::source_path("tests/model/demo_model_greedy.json"));
  if (!in) throw std::runtime_error("missing tests/model/demo_model_greedy.json");
  const auto fixture = nlohmann::json::parse(in);
  eos = fixture["eos"];
  max_tokens = fixture["max_tokens"];
  std::vector<GreedyPrompt> prompts;
  for (const auto& p : fixture["prompts"]) {
    prompts.push_back({p["text"], p["tokens"].get<std::vector<TokenId>>(), p["greedy"].get<std::vector<TokenId>>()});
  }
  return prompts;
}

std::vector<TokenId> greedy(Model& model, const std::vector<TokenId>& prompt, size_t max_tokens, TokenId eos) {
  const size_t vocab = static_cast<size_t>(model.config().vocab_size);
  KvCache cache(model.config(), static_cast<int64_t>(prompt.size() + max_tokens + 1));
  std::vector<float> logits = model.forward(prompt, cache, false);
  std::vector<TokenId> out;
  while (out.size() < max_tokens) {
    const TokenId next = static_cast<TokenId>(std::max_element(logits.begin(), logits.begin() + vocab) - logits.begin());
    out.push_back(next);
    if (next == eos) break;
    const TokenId step[1] = {next};
    logits = model.forward(step, cache, false);
  }
  return out;
}

class DemoModel : public ::testing::Test {
 protected:
  static std::filesystem::path committed() { return test::source_path("models/frugal-demo-qa-q8_0.gguf"); }
};

TEST_F(DemoModel, FitsTheSizeLimit) {
  ASSERT_TRUE(std::filesystem::exists(committed()));
  EXPECT_LE(std::filesystem::file_size(committed()), 12'000'000u);
}

TEST_F(DemoModel, F32GreedyEqualsPyTorch) {
  const auto dir = test::scratch_dir("demo-model");
  const auto f32 = dir / "frugal-demo-qa-f32.gguf";
  quantize_model(committed(), f32, WeightFormat::pure(TensorType::F32), 2);
  ModelOptions options;
  options.threads = 2;
  auto model = Model::load(f32, options);
  auto tokenizer = Tokenizer::from_gguf(model->file());
  TokenId eos = -1;
  size_t max_tokens = 0;
  const auto prompts = read_fixture(eos, max_tokens);
  ASSERT_EQ(prompts.size(), 5u);
  EXPECT_EQ(eos, tokenizer->eos());
  for (const auto& prompt : prompts) {
    SCOPED_TRACE("prompt: " + prompt.text);
    if (prompt.greedy.back() != eos) {  // a free-text prompt: BOS + the text, as frugal tokenizes it
      EXPECT_EQ(tokenizer->encode(prompt.text, true, false), prompt.tokens);
    }
    EXPECT_EQ(greedy(*model, prompt.tokens, max_tokens, eos), prompt.greedy)
        << "frugal: '" << tokenizer->decode(greedy(*model, prompt.tokens, max_tokens, eos)) << "' PyTorch: '"
        << tokenizer->decode(prompt.greedy) << "'";
  }
  std::filesystem::remove_all(dir);
}

TEST_F(DemoModel, Q8AnswersKnowledgePromptsAsPyTorch) {
  ModelOptions options;
  options.threads = 2;
  auto model = Model::load(committed(), options);
  TokenId eos = -1;
  size_t max_tokens = 0;
  int answers = 0;
  for (const auto& prompt : read_fixture(eos, max_tokens)) {
    if (prompt.greedy.empty() || prompt.greedy.back() != eos) continue;  // the free-text prompts
    SCOPED_TRACE("prompt: " + prompt.text);
    EXPECT_EQ(greedy(*model, prompt.tokens, max_tokens, eos), prompt.greedy);
    ++answers;
  }
  EXPECT_EQ(answers, 3);
}

}  // namespace
}  // namespace frugal
