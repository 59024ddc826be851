// Forward passes over the shared-prefix KV trie against the single-sequence
// cache: a prompt in one batch, then several branches (beams) in one batch,
// with slots scattered over small pages.
#include <gtest/gtest.h>

#include <cmath>

#include "frugal/error.h"
#include "frugal/model.h"
#include "support/model_builder.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

std::vector<float> reference_logits(Model& model, const std::vector<TokenId>& tokens) {
  KvCache cache(model.config(), 128);
  return model.forward(tokens, cache, false);
}

void expect_close(const float* a, const std::vector<float>& b, const std::string& what) {
  double worst = 0;
  for (size_t i = 0; i < b.size(); ++i) worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
  EXPECT_LT(worst, 1e-4) << what;
}

class TrieForward : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("trie-forward");
    test::RandomModelSpec spec;
    spec.architecture = "qwen2";
    spec.qkv_bias = true;
    model_ = Model::load(test::write_random_model(spec, dir_ / "model.gguf"), {.threads = 2});
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::unique_ptr<Model> model_;
};

TEST_F(TrieForward, PromptThenBranchesMatchTheSingleSequenceCache) {
  KvTrie trie(model_->kv_layout(), {0, 4});  // small pages: paths cross them
  // Scatter the free slots first, so paths are not contiguous.
  {
    const KvNode scrap = trie.extend(trie.extend(trie.extend(KvTrie::kRoot, 90), 91), 92);
    trie.retain(scrap);
    trie.release(scrap, false);
  }
  const std::vector<TokenId> prompt = {3, 17, 42, 8, 95, 0, 61, 61, 23, 7};
  std::vector<TrieBatchEntry> entries;
  KvNode node = KvTrie::kRoot;
  for (TokenId t : prompt) {
    node = trie.extend(node, t);
    entries.push_back({node, true});
  }
  trie.retain(node);
  const auto prompt_logits = model_->forward(entries, trie);
  KvCache cache(model_->config(), 64);
  const auto expected = model_->forward(prompt, cache, true);
  ASSERT_EQ(prompt_logits.size(), expected.size());
  expect_close(prompt_logits.data(), expected, "prompt");

  // Three branches, one batch; then each grows by one more token, one batch.
  const size_t vocab = static_cast<size_t>(model_->config().vocab_size);
  const std::vector<TokenId> first = {5, 6, 7}, second = {40, 41, 5};
  std::vector<KvNode> beams;
  entries.clear();
  for (TokenId t : first) {
    beams.push_back(trie.extend(node, t));
    trie.retain(beams.back());
    entries.push_back({beams.back(), true});
  }
  auto logits = model_->forward(entries, trie);
  for (size_t b = 0; b < beams.size(); ++b) {
    std::vector<TokenId> sequence = prompt;
    sequence.push_back(first[b]);
    expect_close(&logits[b * vocab], reference_logits(*model_, sequence), "first step, beam " + std::to_string(b));
  }
  entries.clear();
  for (size_t b = 0; b < beams.size(); ++b) {
    const KvNode next = trie.extend(beams[b], second[b]);
    trie.retain(next);
    trie.release(beams[b], false);
    beams[b] = next;
    entries.push_back({next, b != 1});  // logits only where wanted
  }
  logits = model_->forward(entries, trie);
  ASSERT_EQ(logits.size(), 2 * vocab);
  size_t row = 0;
  for (size_t b = 0; b < beams.size(); ++b) {
    if (b == 1) continue;
    std::vector<TokenId> sequence = prompt;
    sequence.push_back(first[b]);
    sequence.push_back(second[b]);
    expect_close(&logits[row++ * vocab], reference_logits(*model_, sequence), "second step, beam " + std::to_string(b));
  }
  // The prompt's slots are shared by the three beams.
  EXPECT_EQ(trie.stats().shared_bytes, prompt.size() * model_->kv_layout().slot_bytes());
}

TEST_F(TrieForward, TokenInvariantBatchesEqualOneTokenPassesBitForBit) {
  KvTrie trie(model_->kv_layout(), {0, 4});
  const std::vector<TokenId> prompt = {3, 17, 42, 8, 95, 0, 61};
  std::vector<TrieBatchEntry> entries;
  KvNode node = KvTrie::kRoot;
  for (TokenId t : prompt) {
    node = trie.extend(node, t);
    entries.push_back({node, false});
  }
  model_->forward(entries, trie);
  KvCache cache(model_->config(), 64);
  model_->forward(prompt, cache, false);
  // Six beams in one token-invariant batch against six one-token passes.
  const size_t vocab = static_cast<size_t>(model_->config().vocab_size);
  entries.clear();
  for (TokenId t = 10; t < 16; ++t) entries.push_back({trie.extend(node, t), true});
  const auto batched = model_->forward(entries, trie, true);
  for (TokenId t = 10; t < 16; ++t) {
    KvCache branch = cache.clone();
    const TokenId one[1] = {t};
    const auto alone = model_->forward(one, branch, false);
    for (size_t i = 0; i < vocab; ++i) {
      ASSERT_EQ(batched[static_cast<size_t>(t - 10) * vocab + i], alone[i]) << "beam " << t << " logit " << i;
    }
  }
}

// A store of F16 or quantized rows answers as a contiguous cache of that
// type does, bit for bit: a prompt in one batch over scattered pages, then
// beams one token each, token-invariant.
TEST_F(TrieForward, ReducedStoresEqualTheirCachesBitForBit) {
  test::RandomModelSpec spec;  // heads of 32: whole blocks for the quantized types
  spec.architecture = "qwen2";
  spec.qkv_bias = true;
  spec.head_size = 32;
  model_ = Model::load(test::write_random_model(spec, dir_ / "model32.gguf"), {.threads = 2});
  for (const KvTypes precision : {KvTypes(KvPrecision::F16), KvTypes(KvPrecision::Q8_0), KvTypes(KvPrecision::Q4_0),
                                  KvTypes(KvPrecision::Q4_H), KvTypes(KvPrecision::Q8_0, KvPrecision::Q4_H),
                                  KvTypes(KvPrecision::Q4_H, KvPrecision::F32)}) {
    SCOPED_TRACE(kv_types_name(precision));
    KvTrie trie(model_->kv_layout(precision), {0, 4});
    EXPECT_EQ(trie.layout().types, precision);
    const std::vector<TokenId> prompt = {3, 17, 42, 8, 95, 0, 61, 23, 7, 11, 64};
    std::vector<TrieBatchEntry> entries;
    KvNode node = KvTrie::kRoot;
    for (TokenId t : prompt) {
      node = trie.extend(node, t);
      entries.push_back({node, true});
    }
    trie.retain(node);
    const auto prompt_logits = model_->forward(entries, trie, true);
    KvCache cache(model_->config(), 64, precision);
    const auto expected = model_->forward(prompt, cache, true);
    ASSERT_EQ(prompt_logits.size(), expected.size());
    expect_close(prompt_logits.data(), expected, "prompt");
    const size_t vocab = static_cast<size_t>(model_->config().vocab_size);
    entries.clear();
    for (TokenId t = 10; t < 14; ++t) entries.push_back({trie.extend(node, t), true});
    const auto batched = model_->forward(entries, trie, true);
    for (TokenId t = 10; t < 14; ++t) {
      KvCache branch = cache.clone();
      const TokenId one[1] = {t};
      const auto alone = model_->forward(one, branch, false);
      for (size_t i = 0; i < vocab; ++i) {
        ASSERT_EQ(batched[static_cast<size_t>(t - 10) * vocab + i], alone[i]) << "beam " << t << " logit " << i;
      }
    }
  }
}

// Long chains are attended to in blocks of queries: a 100-token prompt in
// one batch (blocks cross page boundaries and the 32-query block size), then
// one batch mixing a 40-token continuation, a lone branch off the middle of
// the prompt and a short chain from the root.
TEST_F(TrieForward, LongChainsInMixedBatchesMatchTheSingleSequenceCache) {
  KvTrie trie(model_->kv_layout(), {0, 7});
  {
    const KvNode scrap = trie.extend(trie.extend(KvTrie::kRoot, 90), 91);
    trie.retain(scrap);
    trie.release(scrap, false);
  }
  const size_t vocab = static_cast<size_t>(model_->config().vocab_size);
  auto token = [](size_t i) { return static_cast<TokenId>((i * 37 + 11) % 89); };
  std::vector<TokenId> prompt;
  std::vector<KvNode> path;
  std::vector<TrieBatchEntry> entries;
  KvNode node = KvTrie::kRoot;
  for (size_t i = 0; i < 100; ++i) {
    prompt.push_back(token(i));
    node = trie.extend(node, prompt.back());
    path.push_back(node);
    entries.push_back({node, true});
  }
  trie.retain(node);
  const auto prompt_logits = model_->forward(entries, trie);
  KvCache cache(model_->config(), 256);
  const auto expected = model_->forward(prompt, cache, true);
  expect_close(prompt_logits.data(), expected, "100-token prompt");

  struct Case {
    std::vector<TokenId> sequence;  // the whole sequence the entry ends
  };
  std::vector<Case> cases;
  entries.clear();
  std::vector<TokenId> longer = prompt;
  for (size_t i = 0; i < 40; ++i) {  // continuation
    longer.push_back(token(200 + i));
    node = trie.extend(node, longer.back());
    entries.push_back({node, true});
    cases.push_back({longer});
  }
  {  // a lone branch after prompt position 49
    std::vector<TokenId> branch(prompt.begin(), prompt.begin() + 50);
    branch.push_back(5);
    entries.push_back({trie.extend(path[49], 5), true});
    cases.push_back({branch});
  }
  KvNode other = KvTrie::kRoot;  // a short chain from the root
  std::vector<TokenId> fresh;
  for (TokenId t : {60, 61, 62, 63, 64}) {
    fresh.push_back(t);
    other = trie.extend(other, t);
    entries.push_back({other, true});
    cases.push_back({fresh});
  }
  const auto logits = model_->forward(entries, trie);
  ASSERT_EQ(logits.size(), cases.size() * vocab);
  for (size_t c = 0; c < cases.size(); ++c) {
    KvCache alone(model_->config(), 256);
    const auto reference = model_->forward(cases[c].sequence, alone, false);
    expect_close(&logits[c * vocab], reference, "entry " + std::to_string(c));
  }
}

TEST_F(TrieForward, MismatchedLayoutIsAClearError) {
  KvLayout wrong = model_->kv_layout();
  wrong.layers += 1;
  KvTrie trie(wrong);
  const TrieBatchEntry entry{trie.extend(KvTrie::kRoot, 1), true};
  try {
    model_->forward(std::span(&entry, 1), trie);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not fit this model"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace frugal
