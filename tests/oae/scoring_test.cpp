// SQuAD exact match and F1 on examples worked out by the official
// evaluation script's rules, and amortisation / break-even arithmetic.
#include <gtest/gtest.h>

#include "frugal/oae.h"
#include "frugal/qa_dataset.h"

namespace frugal {
namespace {

TEST(SquadScoring, NormalisationFollowsTheOfficialScript) {
  EXPECT_EQ(normalize_answer("The Denver Broncos!"), "denver broncos");
  EXPECT_EQ(normalize_answer("  an   Apple, a day "), "apple day");
  EXPECT_EQ(normalize_answer("Santa Clara, California."), "santa clara california");
  EXPECT_EQ(normalize_answer("theatre"), "theatre");  // "the" only as a whole word
}

TEST(SquadScoring, ExactMatchAndF1) {
  const std::vector<std::string> gold = {"Denver Broncos", "The Broncos"};
  EXPECT_EQ(exact_match("the broncos", gold), 1.0);
  EXPECT_EQ(exact_match("Broncos", gold), 1.0);  // "The Broncos" normalises to "broncos"
  EXPECT_EQ(exact_match("Denver", gold), 0.0);
  // "Denver" vs "denver broncos": precision 1, recall 1/2 -> F1 2/3.
  EXPECT_NEAR(f1_score("Denver", gold), 2.0 / 3.0, 1e-12);
  // "the Carolina Panthers beat Denver Broncos" vs "denver broncos": 2 common of 5 predicted -> P 0.4, R 1 -> 0.571.
  EXPECT_NEAR(f1_score("the Carolina Panthers beat Denver Broncos", gold), 2 * 0.4 / 1.4, 1e-12);
  EXPECT_EQ(f1_score("Panthers", gold), 0.0);
  // Repeated words count once per occurrence in the gold answer.
  const std::vector<std::string> repeated = {"New York New York"};
  EXPECT_NEAR(f1_score("New York", repeated), 2 * 1.0 * 0.5 / 1.5, 1e-12);
}

TEST(SquadScoring, UnanswerableQuestionsWantNoAnswer) {
  const std::vector<std::string> none;
  EXPECT_EQ(exact_match("", none), 1.0);
  EXPECT_EQ(exact_match("unknown", none), 1.0);
  EXPECT_EQ(f1_score("Unknown.", none), 1.0);
  EXPECT_EQ(exact_match("Denver", none), 0.0);
}

TEST(Amortisation, CostPerQueryAndBreakEven) {
  const CostModel cag{100, 1};   // pays 100 once, then 1 a query
  const CostModel rag{10, 4};
  EXPECT_DOUBLE_EQ(cost_per_query(cag, 1), 101);
  EXPECT_DOUBLE_EQ(cost_per_query(cag, 100), 2);
  EXPECT_DOUBLE_EQ(cost_per_query(rag, 10), 5);
  // 100 + N <= 10 + 4N  <=>  N >= 30.
  ASSERT_TRUE(break_even(cag, rag).has_value());
  EXPECT_EQ(*break_even(cag, rag), 30u);
  EXPECT_LE(cost_per_query(cag, 30), cost_per_query(rag, 30));
  EXPECT_GT(cost_per_query(cag, 29), cost_per_query(rag, 29));
  EXPECT_FALSE(break_even(rag, cag).has_value());    // RAG never stays cheaper
  EXPECT_EQ(*break_even({5, 1}, {10, 1}), 1u);        // cheaper setup, same marginal
  EXPECT_FALSE(break_even({10, 1}, {5, 1}).has_value());
  EXPECT_EQ(*break_even({1, 1}, {2, 3}), 1u);         // never dearer
}

TEST(Amortisation, MethodStatistics) {
  MethodResult m;
  for (double t : {0.1, 0.2, 0.3, 0.4, 1.0}) {
    QuestionResult q;
    q.ttft_seconds = t;
    q.joules = 2 * t;
    q.f1 = 0.5;
    m.questions.push_back(q);
  }
  m.setup_joules = 10;
  EXPECT_DOUBLE_EQ(m.percentile(&QuestionResult::ttft_seconds, 50), 0.3);
  EXPECT_NEAR(m.percentile(&QuestionResult::ttft_seconds, 95), 0.4 + 0.8 * 0.6, 1e-12);  // numpy's linear rule
  EXPECT_DOUBLE_EQ(m.mean(&QuestionResult::joules), 0.8);
  // OAE at N = 10: F1 0.5 over (10 + 10 * 0.8) / 10 = 1.8 J.
  EXPECT_NEAR(oae_score(m, 10), 0.5 / 1.8, 1e-12);
}

}  // namespace
}  // namespace frugal
