#include "frugal/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "frugal/error.h"

namespace frugal {
namespace {

SamplingParams no_filters(float temperature = 1.0f, uint64_t seed = 1234) {
  SamplingParams params;
  params.temperature = temperature;
  params.top_k = 0;
  params.top_p = 1.0f;
  params.min_p = 0.0f;
  params.repeat_penalty = 1.0f;
  params.seed = seed;
  return params;
}

std::vector<float> random_logits(size_t vocab, uint32_t seed, float spread = 4.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, spread);
  std::vector<float> logits(vocab);
  for (float& logit : logits) logit = normal(rng);
  return logits;
}

// Softmax of logits / temperature, computed independently of the sampler.
std::vector<double> softmax(const std::vector<float>& logits, double temperature) {
  double max = *std::max_element(logits.begin(), logits.end());
  std::vector<double> probabilities;
  double total = 0.0;
  for (float logit : logits) {
    probabilities.push_back(std::exp((logit - max) / temperature));
    total += probabilities.back();
  }
  for (double& p : probabilities) p /= total;
  return probabilities;
}

std::vector<int> histogram(Sampler& sampler, const std::vector<float>& logits, int draws) {
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) ++counts[static_cast<size_t>(sampler.sample(logits, {}))];
  return counts;
}

double chi_square(const std::vector<int>& counts, const std::vector<double>& probabilities, int draws) {
  double statistic = 0.0;
  for (size_t i = 0; i < counts.size(); ++i) {
    double expected = probabilities[i] * draws;
    statistic += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  return statistic;
}

TEST(SamplerTest, GreedyPicksArgmax) {
  SamplingParams params;
  params.temperature = 0.0f;
  Sampler sampler(params);
  std::vector<float> logits{0.1f, 2.5f, -1.0f, 2.4f};
  EXPECT_EQ(sampler.sample(logits, {}), 1);
  std::vector<float> large = random_logits(150000, 7);
  int32_t expected = static_cast<int32_t>(std::max_element(large.begin(), large.end()) - large.begin());
  EXPECT_EQ(sampler.sample(large, {}), expected);
}

TEST(SamplerTest, GreedyTiesGoToLowestId) {
  SamplingParams params;
  params.temperature = -1.0f;
  Sampler sampler(params);
  std::vector<float> logits{0.0f, 3.0f, 1.0f, 3.0f};
  EXPECT_EQ(sampler.sample(logits, {}), 1);
}

TEST(SamplerTest, TopKOneEqualsGreedyAtAnyTemperature) {
  for (float temperature : {0.1f, 1.0f, 5.0f, 100.0f}) {
    SamplingParams params = no_filters(temperature, 99);
    params.top_k = 1;
    Sampler sampler(params);
    for (uint32_t trial = 0; trial < 20; ++trial) {
      std::vector<float> logits = random_logits(5000, trial);
      int32_t argmax = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
      EXPECT_EQ(sampler.sample(logits, {}), argmax) << "temperature " << temperature;
    }
  }
  // Ties too: top-1 and greedy agree on the lowest id.
  SamplingParams params = no_filters(1.0f);
  params.top_k = 1;
  Sampler sampler(params);
  std::vector<float> tied{1.0f, 5.0f, 5.0f, 5.0f};
  EXPECT_EQ(sampler.sample(tied, {}), 1);
}

TEST(SamplerTest, SameSeedSameSequenceDifferentSeedDiffers) {
  std::vector<float> logits(50, 0.0f);  // uniform: every draw is informative
  auto sequence = [&](uint64_t seed) {
    Sampler sampler(no_filters(1.0f, seed));
    std::vector<int32_t> tokens;
    for (int i = 0; i < 64; ++i) tokens.push_back(sampler.sample(logits, {}));
    return tokens;
  };
  EXPECT_EQ(sequence(42), sequence(42));
  EXPECT_NE(sequence(42), sequence(43));
  EXPECT_NE(sequence(42), sequence(42 + (uint64_t{1} << 32)));  // high bits count too
}

TEST(SamplerTest, RandomSeedIsReportedAndReplayable) {
  Sampler random_sampler(no_filters(1.0f, SamplingParams::kRandomSeed));
  EXPECT_NE(random_sampler.seed_used(), SamplingParams::kRandomSeed);
  std::vector<float> logits(50, 0.0f);
  std::vector<int32_t> first;
  for (int i = 0; i < 32; ++i) first.push_back(random_sampler.sample(logits, {}));
  Sampler replay(no_filters(1.0f, random_sampler.seed_used()));
  std::vector<int32_t> second;
  for (int i = 0; i < 32; ++i) second.push_back(replay.sample(logits, {}));
  EXPECT_EQ(first, second);
}

TEST(SamplerTest, SmallTopPKeepsOnlyTheTopToken) {
  SamplingParams params = no_filters(1.5f);
  params.top_p = 0.01f;
  Sampler sampler(params);
  std::vector<float> logits = random_logits(150000, 3, 1.0f);
  // Lift one token to about 1% of the mass, so top_p 0.01 keeps it alone.
  logits[777] = *std::max_element(logits.begin(), logits.end()) + 5.0f;
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sampler.sample(logits, {}), 777);
}

TEST(SamplerTest, TopPOnAFlatLargeVocabularyKeepsExactlyTheNucleus) {
  // The nucleus here spans thousands of tokens, past the first sorted stretch.
  std::vector<float> logits = random_logits(150000, 8, 1.0f);
  std::vector<double> probabilities = softmax(logits, 1.0);
  std::vector<double> sorted = probabilities;
  std::sort(sorted.begin(), sorted.end(), std::greater<double>());
  double cumulative = 0.0;
  double smallest_kept = 0.0;
  for (double p : sorted) {
    cumulative += p;
    smallest_kept = p;
    if (cumulative >= 0.3) break;
  }
  SamplingParams params = no_filters(1.0f);
  params.top_p = 0.3f;
  Sampler sampler(params);
  for (int i = 0; i < 100; ++i) {
    int32_t token = sampler.sample(logits, {});
    EXPECT_GE(probabilities[static_cast<size_t>(token)], smallest_kept * 0.999);
  }
}

TEST(SamplerTest, TopPKeepsTheSmallestSetReachingP) {
  // Probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.75 keeps {0, 1} (0.8 >= 0.75).
  std::vector<float> logits{std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplingParams params = no_filters(1.0f);
  params.top_p = 0.75f;
  Sampler sampler(params);
  std::vector<int> counts = histogram(sampler, logits, 4000);
  EXPECT_GT(counts[0], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_EQ(counts[2], 0);
  EXPECT_EQ(counts[3], 0);
  // Renormalized over the kept set: 0.5/0.8 = 0.625.
  EXPECT_NEAR(counts[0] / 4000.0, 0.625, 0.04);
}

TEST(SamplerTest, MinPDropsTokensBelowTheScaledThreshold) {
  // Relative to the top token: 1, e^-1 = 0.37, e^-3 = 0.05, e^-5 = 0.007.
  std::vector<float> logits{0.0f, -1.0f, -3.0f, -5.0f};
  SamplingParams params = no_filters(1.0f);
  params.min_p = 0.1f;
  Sampler sampler(params);
  std::vector<int> counts = histogram(sampler, logits, 4000);
  EXPECT_GT(counts[0], 0);
  EXPECT_GT(counts[1], 0);
  EXPECT_EQ(counts[2], 0);
  EXPECT_EQ(counts[3], 0);
}

TEST(SamplerTest, RepetitionPenaltyTurnsTheChoiceOver) {
  SamplingParams params;
  params.temperature = 0.0f;
  params.repeat_penalty = 1.5f;
  Sampler sampler(params);
  std::vector<float> positive{2.0f, 1.5f};  // 2.0 / 1.5 = 1.33 < 1.5
  EXPECT_EQ(sampler.sample(positive, {}), 0);
  std::vector<int32_t> history{0};
  EXPECT_EQ(sampler.sample(positive, history), 1);
  std::vector<float> negative{-1.0f, -1.2f};  // -1.0 * 1.5 = -1.5 < -1.2
  EXPECT_EQ(sampler.sample(negative, {}), 0);
  EXPECT_EQ(sampler.sample(negative, history), 1);
}

TEST(SamplerTest, RepetitionPenaltyLooksOnlyAtTheRecentWindow) {
  SamplingParams params;
  params.temperature = 0.0f;
  params.repeat_penalty = 1.5f;
  params.repeat_last_n = 2;
  Sampler sampler(params);
  std::vector<float> logits{2.0f, 1.5f, 0.0f};
  std::vector<int32_t> old_use{0, 2, 2};  // token 0 is outside the last 2
  EXPECT_EQ(sampler.sample(logits, old_use), 0);
  std::vector<int32_t> recent_use{2, 0, 2};
  EXPECT_EQ(sampler.sample(logits, recent_use), 1);
  std::vector<int32_t> out_of_range{-5, 99};  // ignored, not a crash
  EXPECT_EQ(sampler.sample(logits, out_of_range), 0);
}

TEST(SamplerTest, DistributionMatchesSoftmaxAtTemperatureOne) {
  std::vector<float> logits{1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -1.0f, 0.25f, 1.5f};
  constexpr int kDraws = 100000;
  Sampler sampler(no_filters(1.0f, 2024));
  std::vector<int> counts = histogram(sampler, logits, kDraws);
  // 7 degrees of freedom: P(chi2 > 24.32) = 0.001. The seed is fixed, so
  // this either always passes or always fails.
  EXPECT_LT(chi_square(counts, softmax(logits, 1.0), kDraws), 24.32);
}

TEST(SamplerTest, DistributionFollowsTemperature) {
  std::vector<float> logits{1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -1.0f, 0.25f, 1.5f};
  constexpr int kDraws = 100000;
  for (float temperature : {0.5f, 2.0f}) {
    Sampler sampler(no_filters(temperature, 77));
    std::vector<int> counts = histogram(sampler, logits, kDraws);
    EXPECT_LT(chi_square(counts, softmax(logits, temperature), kDraws), 24.32)
        << "temperature " << temperature;
  }
}

TEST(SamplerTest, TopKDrawsOnlyAmongTheKBestOfALargeVocabulary) {
  std::vector<float> logits = random_logits(150000, 11, 1.0f);
  std::vector<float> sorted = logits;
  std::nth_element(sorted.begin(), sorted.begin() + 39, sorted.end(), std::greater<float>());
  float fortieth = sorted[39];
  SamplingParams params = no_filters(1.0f);
  params.top_k = 40;
  Sampler sampler(params);
  for (int i = 0; i < 200; ++i) {
    int32_t token = sampler.sample(logits, {});
    EXPECT_GE(logits[static_cast<size_t>(token)], fortieth);
  }
}

TEST(SamplerTest, DefaultChainOnALargeVocabularyStaysInRange) {
  Sampler sampler(SamplingParams{});  // defaults: top-k 40, top-p 0.95, min-p 0.05
  std::vector<float> logits = random_logits(150000, 5);
  std::vector<int32_t> history{1, 2, 3};
  for (int i = 0; i < 20; ++i) {
    int32_t token = sampler.sample(logits, history);
    ASSERT_GE(token, 0);
    ASSERT_LT(token, 150000);
  }
  // Top-p without top-k sorts only as far as needed; the result still lies in range.
  SamplingParams params = no_filters(1.0f);
  params.top_p = 0.9f;
  Sampler top_p_only(params);
  for (int i = 0; i < 20; ++i) {
    int32_t token = top_p_only.sample(logits, {});
    ASSERT_GE(token, 0);
    ASSERT_LT(token, 150000);
  }
}

TEST(SamplerTest, NonFiniteLogitsAreNeverPicked) {
  float nan = std::nanf("");
  float minus_infinity = -INFINITY;
  std::vector<float> logits{nan, minus_infinity, 0.0f, minus_infinity};
  Sampler sampler(no_filters(1.0f));
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sampler.sample(logits, {}), 2);
}

TEST(SamplerTest, RejectsBadInput) {
  Sampler sampler(SamplingParams{});
  EXPECT_THROW(sampler.sample({}, {}), Error);
  SamplingParams params;
  params.repeat_penalty = 0.0f;
  EXPECT_THROW(Sampler{params}, Error);
}

}  // namespace
}  // namespace frugal
