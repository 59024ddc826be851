// Context shift: rows after the forgotten window move down with their keys
// turned back by the window's length (checked against the rotary embedding
// written out in double: angle = position * base^(-2i/d) for pair i, pairs
// (2i, 2i+1)); values move unchanged; generation with the shift runs past
// the context without stopping, and without it stops when the context is
// full.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "frugal/error.h"
#include "frugal/generate.h"
#include "frugal/model.h"
#include "frugal/tokenizer.h"
#include "support/model_builder.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

class ContextShift : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("context-shift");
    test::RandomModelSpec spec;  // llama: rotated pairs (2i, 2i + 1) over the whole head
    model_ = Model::load(test::write_random_model(spec, dir_ / "model.gguf"), {.threads = 2});
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::unique_ptr<Model> model_;
};

TEST_F(ContextShift, MovedKeysAreTurnedBackAsTheRotaryEmbeddingSays) {
  const ModelConfig& c = model_->config();
  ASSERT_EQ(c.rope_dimensions, c.head_size);
  KvCache cache(c, 64);
  const std::vector<TokenId> tokens = {1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45};
  model_->forward(tokens, cache);
  const size_t n = cache.row_elements(), hs = static_cast<size_t>(c.head_size);
  const auto row = [&](bool keys, int64_t layer, int64_t p) {
    const auto* r = static_cast<const float*>(keys ? cache.key_row(layer, p) : cache.value_row(layer, p));
    return std::vector<float>(r, r + n);
  };
  std::vector<std::vector<float>> keys, values;
  for (int64_t l = 0; l < c.layer_count; ++l) {
    for (int64_t p = 0; p < 12; ++p) {
      keys.push_back(row(true, l, p));
      values.push_back(row(false, l, p));
    }
  }
  const int64_t keep = 2, discard = 3;
  model_->shift_context(cache, keep, discard);
  ASSERT_EQ(cache.size(), 12 - discard);
  for (int64_t l = 0; l < c.layer_count; ++l) {
    for (int64_t p = 0; p < cache.size(); ++p) {
      const int64_t from = p < keep ? p : p + discard;
      const auto& before = keys[static_cast<size_t>(l * 12 + from)];
      const auto after = row(true, l, p);
      EXPECT_EQ(row(false, l, p), values[static_cast<size_t>(l * 12 + from)]);
      for (size_t head = 0; head < n / hs; ++head) {
        for (size_t i = 0; i < hs / 2; ++i) {
          const double angle = static_cast<double>(p - from) *
                               std::pow(static_cast<double>(c.rope_freq_base), -2.0 * static_cast<double>(i) /
                                                                              static_cast<double>(hs));
          const double x0 = before[head * hs + 2 * i], x1 = before[head * hs + 2 * i + 1];
          EXPECT_NEAR(after[head * hs + 2 * i], x0 * std::cos(angle) - x1 * std::sin(angle), 1e-4);
          EXPECT_NEAR(after[head * hs + 2 * i + 1], x0 * std::sin(angle) + x1 * std::cos(angle), 1e-4);
        }
      }
    }
  }
  EXPECT_THROW(model_->shift_context(cache, 5, 5), Error);
  EXPECT_THROW(model_->shift_context(cache, 0, 0), Error);
}

TEST_F(ContextShift, GenerationGoesOnPastTheContext) {
  model_ = Model::load(test::shared_path("models/tiny-llama-spm.gguf"), {.threads = 2});
  const auto tokenizer = Tokenizer::from_gguf(model_->file());
  const std::vector<TokenId> prompt = {1, 5, 9, 13};
  GenerationOptions options;
  options.max_tokens = 100;
  options.ignore_eos = true;
  KvCache bounded(model_->config(), 32);
  const auto stopped = generate(*model_, *tokenizer, bounded, prompt, options);
  EXPECT_EQ(stopped.stop_reason, StopReason::ContextFull);
  EXPECT_LT(stopped.tokens.size(), 32u);
  options.context_shift = true;
  KvCache shifting(model_->config(), 32);
  const auto result = generate(*model_, *tokenizer, shifting, prompt, options);
  EXPECT_EQ(result.stop_reason, StopReason::MaxTokens);
  EXPECT_EQ(result.tokens.size(), 100u);
  EXPECT_GE(result.context_shifts, 5u);
  EXPECT_LE(shifting.size(), 32);
  options.context_shift_keep = 31;  // nothing left to forget in 32
  KvCache tiny(model_->config(), 32);
  EXPECT_THROW(generate(*model_, *tokenizer, tiny, prompt, options), Error);
  // Until the first shift, the same tokens as without it.
  for (size_t i = 0; i < stopped.tokens.size(); ++i) EXPECT_EQ(result.tokens[i], stopped.tokens[i]) << i;
}

}  // namespace
}  // namespace frugal
