// Beam search: the search core against brute force, a literal transcription of
// transformers' BeamSearchScorer and a hand-checked case; the `batch`
// implementation on the shared tiny model (greedy for k = 1, scores that
// match a from-scratch forward pass, determinism, errors).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "frugal/beam_search.h"
#include "frugal/error.h"
#include "frugal/generate.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using Sequence = std::vector<TokenId>;
using LogitFunction = std::function<std::vector<float>(const Sequence& prefix)>;

// Logits as a function of the generated prefix: no transformer needed.
class FunctionSource final : public BeamLogitSource {
 public:
  explicit FunctionSource(LogitFunction logits) : logits_(std::move(logits)) {}
  std::vector<float> start() override {
    beams_.assign(1, Sequence{});
    return logits_(beams_[0]);
  }
  std::vector<float> advance(std::span<const BeamExtension> beams) override {
    std::vector<Sequence> next;
    std::vector<float> all;
    for (const BeamExtension& beam : beams) {
      next.push_back(beams_.at(beam.parent));
      next.back().push_back(beam.token);
      const auto row = logits_(next.back());
      all.insert(all.end(), row.begin(), row.end());
    }
    beams_ = std::move(next);
    ++steps;
    return all;
  }
  size_t steps = 0;

 private:
  LogitFunction logits_;
  std::vector<Sequence> beams_;
};

constexpr size_t kVocab = 5;
constexpr TokenId kEos = 4;
bool is_eos(TokenId t) { return t == kEos; }

// Deterministic pseudo-random logits in [-3, 3) from the prefix and a seed.
LogitFunction hashed_logits(uint64_t seed) {
  return [seed](const Sequence& prefix) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ seed;
    for (TokenId t : prefix) h = (h ^ static_cast<uint64_t>(t + 1)) * 0x100000001B3ull + 0x632BE59BD9B4E019ull;
    std::vector<float> logits(kVocab);
    for (size_t v = 0; v < kVocab; ++v) {
      h ^= h >> 33;
      h *= 0xFF51AFD7ED558CCDull;
      h ^= h >> 29;
      logits[v] = static_cast<float>(static_cast<double>(h >> 11) / static_cast<double>(1ull << 53) * 6.0 - 3.0);
    }
    return logits;
  };
}

std::vector<double> log_softmax(const std::vector<float>& logits) {
  double m = *std::max_element(logits.begin(), logits.end());
  double s = 0;
  for (float x : logits) s += std::exp(x - m);
  std::vector<double> out;
  for (float x : logits) out.push_back(x - m - std::log(s));
  return out;
}

double normalized(double log_probability, size_t length, double penalty) {
  return log_probability / std::pow(static_cast<double>(length), penalty);
}

// Every sequence a search of `max_length` new tokens can return: ended by EOS
// at any length, or cut at max_length. Best score first.
std::vector<BeamHypothesis> exhaustive(const LogitFunction& logits, size_t max_length, double penalty) {
  std::vector<BeamHypothesis> all;
  std::function<void(Sequence&, double)> walk = [&](Sequence& prefix, double sum) {
    const auto lp = log_softmax(logits(prefix));
    for (TokenId t = 0; t < static_cast<TokenId>(kVocab); ++t) {
      prefix.push_back(t);
      const double total = sum + lp[static_cast<size_t>(t)];
      if (is_eos(t) || prefix.size() == max_length) {
        all.push_back({prefix, total, normalized(total, prefix.size(), penalty)});
      } else {
        walk(prefix, total);
      }
      prefix.pop_back();
    }
  };
  Sequence empty;
  walk(empty, 0);
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.score > b.score; });
  return all;
}

// transformers' BeamSearchScorer.process / BeamHypotheses.add / is_done /
// finalize, transcribed literally (full sort of every candidate, list of
// finished hypotheses with delete-the-worst), for one batch item.
std::vector<BeamHypothesis> transformers_reference(const LogitFunction& logits, const BeamSearchOptions& o) {
  const size_t k = static_cast<size_t>(o.beam_width);
  const double lp = o.length_penalty;
  std::vector<BeamHypothesis> hyps;
  double worst = 1e9;
  auto add = [&](const Sequence& seq, double sum) {
    const double score = normalized(sum, seq.size(), lp);
    if (hyps.size() < k || score > worst) {
      hyps.push_back({seq, sum, score});
      if (hyps.size() > k) {
        auto w = std::min_element(hyps.begin(), hyps.end(), [](auto& a, auto& b) { return a.score < b.score; });
        hyps.erase(w);
        worst = std::min_element(hyps.begin(), hyps.end(), [](auto& a, auto& b) { return a.score < b.score; })->score;
      } else {
        worst = std::min(score, worst);
      }
    }
  };
  auto is_done = [&](double best_sum, size_t cur_len) {
    if (hyps.size() < k) return false;
    if (o.early_stopping == EarlyStopping::True) return true;
    size_t len = cur_len;
    if (o.early_stopping == EarlyStopping::Never && lp > 0) len = static_cast<size_t>(o.max_new_tokens);
    return worst >= normalized(best_sum, len, lp);
  };
  std::vector<std::pair<Sequence, double>> beams = {{{}, 0.0}};
  for (size_t cur_len = 1;; ++cur_len) {
    struct Cand { double sum; size_t beam; TokenId token; };
    std::vector<Cand> cands;
    for (size_t b = 0; b < beams.size(); ++b) {
      const auto l = log_softmax(logits(beams[b].first));
      for (size_t t = 0; t < kVocab; ++t) cands.push_back({beams[b].second + l[t], b, static_cast<TokenId>(t)});
    }
    std::stable_sort(cands.begin(), cands.end(), [](auto& a, auto& b) { return a.sum > b.sum; });
    cands.resize(std::min(cands.size(), 2 * k));
    std::vector<std::pair<Sequence, double>> next;
    for (size_t rank = 0; rank < cands.size(); ++rank) {
      Sequence seq = beams[cands[rank].beam].first;
      seq.push_back(cands[rank].token);
      if (is_eos(cands[rank].token)) {
        if (rank < k) add(seq, cands[rank].sum);
      } else {
        next.emplace_back(seq, cands[rank].sum);
      }
      if (next.size() == k) break;
    }
    if (next.empty()) break;
    if (cur_len == static_cast<size_t>(o.max_new_tokens)) {  // finalize
      for (auto& [seq, sum] : next) add(seq, sum);
      break;
    }
    if (is_done(next[0].second, cur_len)) break;
    beams = next;
  }
  std::stable_sort(hyps.begin(), hyps.end(), [](auto& a, auto& b) { return a.score > b.score; });
  hyps.resize(std::min(hyps.size(), static_cast<size_t>(o.num_return_sequences)));
  return hyps;
}

std::vector<BeamHypothesis> search(const LogitFunction& logits, const BeamSearchOptions& options) {
  FunctionSource source(logits);
  return search_beams(source, kVocab, is_eos, options);
}

void expect_same(const std::vector<BeamHypothesis>& got, const std::vector<BeamHypothesis>& want,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].tokens, want[i].tokens) << what << ", hypothesis " << i;
    EXPECT_NEAR(got[i].log_probability, want[i].log_probability, 1e-9) << what << ", hypothesis " << i;
    EXPECT_NEAR(got[i].score, want[i].score, 1e-9) << what << ", hypothesis " << i;
  }
}

const EarlyStopping kModes[] = {EarlyStopping::True, EarlyStopping::False, EarlyStopping::Never};

TEST(BeamSearchCore, WideEnoughBeamFindsTheExactTopN) {
  // With k at least the number of candidates of the last step (5 * 4^2), no
  // candidate is ever pruned, so every mode returns the brute-force best.
  constexpr size_t kLength = 3;
  for (uint64_t seed = 0; seed < 4; ++seed) {
    for (float penalty : {0.0f, 1.0f, 2.0f}) {
      for (EarlyStopping mode : kModes) {
        BeamSearchOptions options{.beam_width = 80, .max_new_tokens = kLength, .length_penalty = penalty,
                                  .early_stopping = mode, .num_return_sequences = 8};
        auto want = exhaustive(hashed_logits(seed), kLength, penalty);
        want.resize(8);
        expect_same(search(hashed_logits(seed), options), want,
                    "seed " + std::to_string(seed) + " penalty " + std::to_string(penalty));
      }
    }
  }
}

TEST(BeamSearchCore, MatchesTransformersTranscriptionForNarrowBeams) {
  // Narrow beams prune, and the three stopping rules then differ: the core
  // must agree with the literal transcription in every configuration.
  size_t true_differs_from_false = 0, false_differs_from_never = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    for (int width : {1, 2, 3, 4}) {
      for (float penalty : {-1.0f, 0.0f, 1.0f, 2.0f}) {
        std::map<EarlyStopping, std::vector<BeamHypothesis>> by_mode;
        for (EarlyStopping mode : kModes) {
          BeamSearchOptions options{.beam_width = width, .max_new_tokens = 6, .length_penalty = penalty,
                                    .early_stopping = mode, .num_return_sequences = width};
          by_mode[mode] = search(hashed_logits(seed), options);
          expect_same(by_mode[mode], transformers_reference(hashed_logits(seed), options),
                      "seed " + std::to_string(seed) + " k " + std::to_string(width) + " penalty " +
                          std::to_string(penalty) + " mode " + std::to_string(static_cast<int>(mode)));
        }
        auto tokens = [&](EarlyStopping m) {
          std::vector<Sequence> out;
          for (auto& h : by_mode[m]) out.push_back(h.tokens);
          return out;
        };
        true_differs_from_false += tokens(EarlyStopping::True) != tokens(EarlyStopping::False);
        false_differs_from_never += tokens(EarlyStopping::False) != tokens(EarlyStopping::Never);
      }
    }
  }
  // The comparison means something only if the modes were exercised.
  EXPECT_GT(true_differs_from_false, 0u);
  EXPECT_GT(false_differs_from_never, 0u);
}

TEST(BeamSearchCore, HandCheckedStoppingRules) {
  // Tokens A = 0, B = 1, E = 2 (EOS); probabilities by prefix, uniform
  // elsewhere. k = 1, 3 new tokens.
  //   ()   : E .5, A .4, B .1  -> "E" finishes with log .5 = -0.693 (score /1)
  //   (A)  : A .9, B .05, E .05
  //   (AA) : E .9, A .05, B .05 -> "AAE": log(.4 * .9 * .9) = -1.127, /3 = -0.376
  const std::map<Sequence, std::vector<float>> table = {
      {{}, {0.4f, 0.1f, 0.5f}}, {{0}, {0.9f, 0.05f, 0.05f}}, {{0, 0}, {0.05f, 0.05f, 0.9f}}};
  LogitFunction logits = [&](const Sequence& prefix) {
    auto it = table.find(prefix);
    std::vector<float> p = it == table.end() ? std::vector<float>{1, 1, 1} : it->second;
    for (float& x : p) x = std::log(x);
    return p;
  };
  auto run = [&](EarlyStopping mode, float penalty, size_t* steps) {
    FunctionSource source(logits);
    BeamSearchOptions options{.beam_width = 1, .max_new_tokens = 3, .length_penalty = penalty,
                              .early_stopping = mode};
    auto result = search_beams(source, 3, [](TokenId t) { return t == 2; }, options);
    *steps = source.steps;
    return result;
  };
  size_t steps = 0;
  // True and False stop at once: "E" is finished and the running "A"
  // (-0.916 at length 1) cannot beat it.
  for (EarlyStopping mode : {EarlyStopping::True, EarlyStopping::False}) {
    auto h = run(mode, 1.0f, &steps);
    ASSERT_EQ(h.size(), 1u);
    EXPECT_EQ(h[0].tokens, (Sequence{2}));
    EXPECT_NEAR(h[0].score, std::log(0.5), 1e-6);
    EXPECT_EQ(steps, 0u);
  }
  // Never with penalty 1 bounds "A" by -0.916 / 3 > -0.693 and keeps going to
  // the better "AAE".
  auto never = run(EarlyStopping::Never, 1.0f, &steps);
  ASSERT_EQ(never.size(), 1u);
  EXPECT_EQ(never[0].tokens, (Sequence{0, 0, 2}));
  EXPECT_NEAR(never[0].log_probability, std::log(0.4 * 0.9 * 0.9), 1e-6);
  EXPECT_NEAR(never[0].score, std::log(0.4 * 0.9 * 0.9) / 3, 1e-6);
  EXPECT_EQ(steps, 2u);
  // With penalty 0 the current length is the exact bound: Never stops at once.
  auto never_flat = run(EarlyStopping::Never, 0.0f, &steps);
  EXPECT_EQ(never_flat[0].tokens, (Sequence{2}));
  EXPECT_EQ(steps, 0u);
}

TEST(BeamSearchCore, RejectsBadOptions) {
  auto logits = hashed_logits(1);
  EXPECT_THROW(search(logits, {.beam_width = 0}), Error);
  EXPECT_THROW(search(logits, {.beam_width = 2, .num_return_sequences = 3}), Error);
  EXPECT_THROW(search(logits, {.beam_width = 2, .num_return_sequences = 0}), Error);
  EXPECT_THROW(search(logits, {.beam_width = 2, .max_new_tokens = 0}), Error);
}

class BeamSearchBatch : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = Model::load(test::shared_path("models/tiny-llama-spm.gguf"), {.threads = 2});
    tokenizer_ = Tokenizer::from_gguf(model_->file());
    prompt_ = tokenizer_->encode("Once upon a time", true, false);
  }
  // Sum of log-softmax of each token, from one fresh forward pass over
  // prompt + tokens: checks what the per-beam cache copies fed the search.
  double scratch_log_probability(const Sequence& tokens) {
    Sequence all = prompt_;
    all.insert(all.end(), tokens.begin(), tokens.end() - 1);
    KvCache cache(model_->config(), static_cast<int64_t>(all.size()) + 1);
    const auto logits = model_->forward(all, cache, true);
    const size_t vocab = static_cast<size_t>(model_->config().vocab_size);
    double sum = 0;
    for (size_t i = 0; i < tokens.size(); ++i) {
      const size_t row = prompt_.size() - 1 + i;
      std::vector<float> r(logits.begin() + static_cast<std::ptrdiff_t>(row * vocab),
                           logits.begin() + static_cast<std::ptrdiff_t>((row + 1) * vocab));
      sum += log_softmax(r)[static_cast<size_t>(tokens[i])];
    }
    return sum;
  }
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  Sequence prompt_;
};

TEST_F(BeamSearchBatch, WidthOneIsGreedyDecoding) {
  KvCache cache(model_->config(), 128);
  GenerationOptions greedy;
  greedy.max_tokens = 20;
  greedy.sampling.temperature = 0;
  const auto expected = generate(*model_, *tokenizer_, cache, prompt_, greedy);
  const auto result = make_batch_beam_search()->run(*model_, *tokenizer_, prompt_,
                                                    {.beam_width = 1, .max_new_tokens = 20});
  ASSERT_EQ(result.hypotheses.size(), 1u);
  EXPECT_EQ(result.hypotheses[0].tokens, expected.tokens);
}

TEST_F(BeamSearchBatch, ScoresMatchAFreshForwardPassAndRunsRepeat) {
  const BeamSearchOptions options{.beam_width = 4, .max_new_tokens = 12, .length_penalty = 1.0f,
                                  .num_return_sequences = 4};
  auto search = make_batch_beam_search();
  const auto first = search->run(*model_, *tokenizer_, prompt_, options);
  ASSERT_EQ(first.hypotheses.size(), 4u);
  for (size_t i = 0; i < first.hypotheses.size(); ++i) {
    const auto& h = first.hypotheses[i];
    if (i > 0) {
      EXPECT_GE(first.hypotheses[i - 1].score, h.score);
    }
    EXPECT_NEAR(h.log_probability, scratch_log_probability(h.tokens), 1e-3 * std::abs(h.log_probability));
    EXPECT_NEAR(h.score, h.log_probability / static_cast<double>(h.tokens.size()), 1e-9);
    for (size_t j = 0; j < i; ++j) EXPECT_NE(h.tokens, first.hypotheses[j].tokens);
  }
  // Same input, same output; fewer sequences asked: the best ones, same order.
  const auto again = search->run(*model_, *tokenizer_, prompt_, options);
  auto fewer = options;
  fewer.num_return_sequences = 2;
  const auto two = search->run(*model_, *tokenizer_, prompt_, fewer);
  ASSERT_EQ(again.hypotheses.size(), 4u);
  ASSERT_EQ(two.hypotheses.size(), 2u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(again.hypotheses[i].tokens, first.hypotheses[i].tokens);
    EXPECT_EQ(again.hypotheses[i].score, first.hypotheses[i].score);
    if (i < 2) {
      EXPECT_EQ(two.hypotheses[i].tokens, first.hypotheses[i].tokens);
    }
  }
}

TEST_F(BeamSearchBatch, ReportsPeakKvBytesAndForwardPasses) {
  const BeamSearchOptions options{.beam_width = 4, .max_new_tokens = 8, .early_stopping = EarlyStopping::Never};
  const auto result = make_batch_beam_search()->run(*model_, *tokenizer_, prompt_, options);
  const auto& c = model_->config();
  const size_t position_bytes = 2 * static_cast<size_t>(c.layer_count * c.kv_head_count * c.head_size) * 4;
  // At most k caches, each at most prompt + max_new_tokens - 1 positions.
  EXPECT_LE(result.peak_kv_bytes, 4 * (prompt_.size() + 7) * position_bytes);
  EXPECT_GE(result.peak_kv_bytes, prompt_.size() * position_bytes);
  EXPECT_EQ(result.peak_kv_bytes % position_bytes, 0u);
  EXPECT_GE(result.forward_passes, 1u);
  EXPECT_LE(result.forward_passes, 1u + 4 * 7);
  EXPECT_GT(result.seconds, 0.0);
}

TEST_F(BeamSearchBatch, RejectsBadOptionsAndEmptyPrompts) {
  auto search = make_batch_beam_search();
  EXPECT_THROW(search->run(*model_, *tokenizer_, prompt_, {.beam_width = 0}), Error);
  EXPECT_THROW(search->run(*model_, *tokenizer_, prompt_, {.beam_width = 2, .num_return_sequences = 3}), Error);
  EXPECT_THROW(search->run(*model_, *tokenizer_, {}, {}), Error);
}

TEST(KvCacheClone, CopiesFilledPositionsOnly) {
  // A clone continues exactly like the original.
  auto model = Model::load(test::shared_path("models/tiny-llama-spm.gguf"), {.threads = 2});
  const Sequence prompt = {1, 100, 200, 300};
  KvCache original(model->config(), 16);
  model->forward(prompt, original, false);
  KvCache copy = original.clone();
  EXPECT_EQ(copy.size(), original.size());
  EXPECT_EQ(copy.capacity(), original.capacity());
  EXPECT_EQ(copy.filled_bytes(), original.filled_bytes());
  const TokenId next[1] = {42};
  EXPECT_EQ(model->forward(next, copy, false), model->forward(next, original, false));
}

}  // namespace
}  // namespace frugal
