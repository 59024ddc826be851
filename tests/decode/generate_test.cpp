// The generation loop on random models: what it returns, what it leaves in
// the KV cache, and how it stops.
#include <gtest/gtest.h>

#include "frugal/error.h"
#include "frugal/gguf.h"
#include "frugal/generate.h"
#include "support/model_builder.h"
#include "support/greedy_options.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using test::greedy;

class Generation : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("generate");
    // The shared tiny model with its real SentencePiece vocabulary.
    model_ = Model::load(test::shared_path("models/tiny-llama-spm.gguf"), {.threads = 2});
    tokenizer_ = Tokenizer::from_gguf(model_->file());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(Generation, CacheHoldsPromptAndAllButTheLastToken) {
  const auto prompt = tokenizer_->encode("Once upon a time", true, false);
  KvCache cache(model_->config(), 128);
  const auto result = generate(*model_, *tokenizer_, cache, prompt, greedy(7));
  EXPECT_EQ(result.tokens.size(), 7u);
  EXPECT_EQ(result.stop_reason, StopReason::MaxTokens);
  EXPECT_EQ(cache.size(), static_cast<int64_t>(prompt.size() + 6));

  // Greedy decoding by hand, from scratch, gives the same tokens.
  KvCache manual(model_->config(), 128);
  std::vector<float> logits = model_->forward(prompt, manual, false);
  for (TokenId expected : result.tokens) {
    const auto best = static_cast<TokenId>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    EXPECT_EQ(best, expected);
    const TokenId next[1] = {best};
    logits = model_->forward(next, manual, false);
  }
  // Text is the pieces of the tokens.
  std::string pieces;
  for (TokenId t : result.tokens) pieces += tokenizer_->token_to_piece(t);
  EXPECT_EQ(result.text, pieces);
}

TEST_F(Generation, ContinuingAConversationReusesTheCache) {
  const auto prompt = tokenizer_->encode("Once upon a time", true, false);
  KvCache cache(model_->config(), 128);
  const auto first = generate(*model_, *tokenizer_, cache, prompt, greedy(5));
  // Feed the last token, then continue: equals one long greedy run.
  const TokenId last[1] = {first.tokens.back()};
  const auto second = generate(*model_, *tokenizer_, cache, last, greedy(5));
  KvCache fresh(model_->config(), 128);
  const auto whole = generate(*model_, *tokenizer_, fresh, prompt, greedy(10));
  std::vector<TokenId> joined = first.tokens;
  joined.insert(joined.end(), second.tokens.begin(), second.tokens.end());
  EXPECT_EQ(joined, whole.tokens);
}

TEST_F(Generation, StopStringsCancellationAndZeroBudget) {
  const auto prompt = tokenizer_->encode("Once upon a time, in a small village", true, false);
  KvCache cache(model_->config(), 128);
  // The reference continuation is " village village ...": stop at the second word.
  GenerationOptions options = greedy(24);
  options.stop_strings = {"ge vil"};
  const auto stopped = generate(*model_, *tokenizer_, cache, prompt, options);
  EXPECT_EQ(stopped.stop_reason, StopReason::StopString);
  EXPECT_EQ(stopped.text, " villa");

  KvCache cache2(model_->config(), 128);
  int calls = 0;
  const auto cancelled = generate(*model_, *tokenizer_, cache2, prompt, greedy(24), [&](std::string_view) {
    return ++calls < 3;
  });
  EXPECT_EQ(cancelled.stop_reason, StopReason::Cancelled);
  EXPECT_EQ(cancelled.tokens.size(), 3u);

  KvCache cache3(model_->config(), 128);
  const auto none = generate(*model_, *tokenizer_, cache3, prompt, greedy(0));
  EXPECT_TRUE(none.tokens.empty());
  EXPECT_EQ(cache3.size(), static_cast<int64_t>(prompt.size()));
}

TEST_F(Generation, TrimmingTheLeadingSpaceChangesTheTextNotTheTokens) {
  const auto prompt = tokenizer_->encode("Once upon a time, in a small village", true, false);
  KvCache plain_cache(model_->config(), 128);
  const auto plain = generate(*model_, *tokenizer_, plain_cache, prompt, greedy(6));
  ASSERT_EQ(plain.text.substr(0, 8), " village");  // the reference continuation
  GenerationOptions options = greedy(6);
  options.trim_leading_space = true;
  std::vector<std::string> pieces;
  KvCache cache(model_->config(), 128);
  const auto trimmed = generate(*model_, *tokenizer_, cache, prompt, options, [&](std::string_view piece) {
    pieces.emplace_back(piece);
    return true;
  });
  EXPECT_EQ(trimmed.tokens, plain.tokens);
  EXPECT_EQ(trimmed.text, plain.text.substr(1));
  ASSERT_FALSE(pieces.empty());
  EXPECT_EQ(pieces.front().substr(0, 7), "village");
  std::string streamed;
  for (const auto& piece : pieces) streamed += piece;
  EXPECT_EQ(streamed, trimmed.text);
}

TEST_F(Generation, ContextLimits) {
  const auto prompt = tokenizer_->encode("Once upon a time", true, false);
  KvCache tight(model_->config(), static_cast<int64_t>(prompt.size()) + 3);
  const auto result = generate(*model_, *tokenizer_, tight, prompt, greedy(-1));
  EXPECT_EQ(result.stop_reason, StopReason::ContextFull);
  EXPECT_EQ(result.tokens.size(), 4u);
  KvCache too_small(model_->config(), static_cast<int64_t>(prompt.size()));
  EXPECT_THROW(generate(*model_, *tokenizer_, too_small, prompt, greedy(4)), Error);
}

TEST_F(Generation, MismatchedTokenizerIsRejected) {
  const GgufFile vocab = GgufFile::open(test::shared_path("vocab/ggml-vocab-gpt-2.gguf"));
  const auto other = Tokenizer::from_gguf(vocab);
  KvCache cache(model_->config(), 32);
  const TokenId prompt[1] = {1};
  try {
    generate(*model_, *other, cache, prompt, greedy(2));
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("50257 tokens"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace frugal
