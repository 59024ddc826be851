// The trie beam search against the batch one (a KV copy per beam): the same
// hypotheses and scores for every beam width, on the shared models and on a
// random model of another architecture, with far less KV memory.
#include <gtest/gtest.h>

#include <cmath>

#include <fmt/format.h>

#include "frugal/beam_search.h"
#include "frugal/error.h"
#include "frugal/gguf.h"
#include "support/model_builder.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

struct Loaded {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
};

Loaded load(const std::filesystem::path& path) {
  Loaded l;
  l.model = Model::load(path, {.threads = 2});
  l.tokenizer = Tokenizer::from_gguf(l.model->file());
  return l;
}

void expect_same_search(Loaded& l, const std::vector<TokenId>& prompt, const BeamSearchOptions& options,
                        const std::string& what) {
  const auto trie = make_trie_beam_search()->run(*l.model, *l.tokenizer, prompt, options);
  const auto batch = make_batch_beam_search()->run(*l.model, *l.tokenizer, prompt, options);
  ASSERT_EQ(trie.hypotheses.size(), batch.hypotheses.size()) << what;
  for (size_t i = 0; i < trie.hypotheses.size(); ++i) {
    EXPECT_EQ(trie.hypotheses[i].tokens, batch.hypotheses[i].tokens) << what << " hypothesis " << i;
    EXPECT_NEAR(trie.hypotheses[i].score, batch.hypotheses[i].score, 1e-4 * std::abs(batch.hypotheses[i].score))
        << what << " hypothesis " << i;
  }
  if (options.beam_width > 1) {
    EXPECT_LT(trie.peak_kv_bytes, batch.peak_kv_bytes) << what;
  }
  // One batched pass per step instead of one pass per beam.
  EXPECT_LE(trie.forward_passes, static_cast<size_t>(options.max_new_tokens) + 1) << what;
}

TEST(BeamSearchTrie, SameHypothesesAsBatchOnTheSharedModels) {
  for (const char* name : {"tiny-llama-spm", "tiny-qwen2-gpt2", "mini-llama-spm-q8_0"}) {
    Loaded l = load(test::shared_path(std::string("models/") + name + ".gguf"));
    const auto prompt = l.tokenizer->encode("Once upon a time, in a small village", true, false);
    for (int k : {1, 2, 4, 8, 16}) {
      BeamSearchOptions options;
      options.beam_width = k;
      options.num_return_sequences = k;
      options.max_new_tokens = 6;
      expect_same_search(l, prompt, options, std::string(name) + " k=" + std::to_string(k));
    }
  }
}

TEST(BeamSearchTrie, SameHypothesesOnARandomQwen3ModelWithEveryStoppingRule) {
  const auto dir = test::scratch_dir("beam-qwen3");
  test::RandomModelSpec spec;
  spec.architecture = "qwen3";
  spec.qk_norm = true;
  spec.vocab = 64;
  Loaded l;
  l.model = Model::load(test::write_random_model(spec, dir / "model.gguf"), {.threads = 2});
  // A 64-token vocabulary to go with it (only EOS matters to the search).
  GgufWriter vocab;
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int i = 0; i < 64; ++i) {
    tokens.push_back(i == 2 ? std::string("</s>") : fmt::format("t{}", i));
    types.push_back(i == 2 ? 3 : 1);  // 2 is the end-of-generation control token
  }
  vocab.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
  vocab.set("tokenizer.ggml.tokens", GgufValue::string_array(tokens));
  vocab.set("tokenizer.ggml.token_type", GgufValue::i32_array(types));
  vocab.set("tokenizer.ggml.merges", GgufValue::string_array({}));
  vocab.set("tokenizer.ggml.eos_token_id", GgufValue::u32(2));
  vocab.write(dir / "vocab.gguf");
  l.tokenizer = Tokenizer::from_gguf(GgufFile::open(dir / "vocab.gguf"));
  const std::vector<TokenId> prompt = {5, 9, 13, 21, 34, 55, 8, 13};
  for (auto stopping : {EarlyStopping::True, EarlyStopping::False, EarlyStopping::Never}) {
    for (int k : {1, 2, 4, 8, 16}) {
      BeamSearchOptions options;
      options.beam_width = k;
      options.num_return_sequences = std::min(k, 3);
      options.max_new_tokens = 7;
      options.early_stopping = stopping;
      options.length_penalty = 0.7f;
      expect_same_search(l, prompt, options, "qwen3 k=" + std::to_string(k));
    }
  }
  std::filesystem::remove_all(dir);
}

TEST(BeamSearchTrie, SharesThePromptAcrossBeams) {
  Loaded l = load(test::shared_path("models/mini-llama-spm-q8_0.gguf"));
  std::vector<TokenId> prompt = {1};
  for (int i = 0; i < 63; ++i) prompt.push_back(static_cast<TokenId>(100 + 7 * i));
  BeamSearchOptions options;
  options.beam_width = 8;
  options.max_new_tokens = 8;
  const auto trie = make_trie_beam_search()->run(*l.model, *l.tokenizer, prompt, options);
  const auto batch = make_batch_beam_search()->run(*l.model, *l.tokenizer, prompt, options);
  // 64 shared prompt tokens + at most 8 x 8 beam tokens (+ k in flight),
  // against 8 full copies of the prompt.
  const size_t per_token = l.model->kv_layout().slot_bytes();
  EXPECT_LE(trie.peak_kv_bytes, (64 + 8 * 8 + 8) * per_token);
  EXPECT_GE(batch.peak_kv_bytes, 8 * 64 * per_token);
  EXPECT_THROW(make_beam_search("greedy"), Error);
}

}  // namespace
}  // namespace frugal
