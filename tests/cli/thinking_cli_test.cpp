// Thinking control end to end through the CLI with frugal's own thinking
// model (models/frugal-think-q8_0.gguf): ask --json, budgets, thinking off,
// the OAE thinking methods, and the errors for a model that does not think.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support/cli_runner.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using nlohmann::json;
using test::run_frugal;

class ThinkingCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = test::scratch_dir("thinking-cli");
    std::ofstream(dir_ / "harlow.txt") << "The Harlow Clinic is in Marketby. It has 12 staff.\n";
    std::ofstream(dir_ / "fenwick.txt") << "The Fenwick Clinic is in Marketby. It has 7 staff.\n";
  }
  static json ask(std::vector<std::string> extra) {
    std::vector<std::string> args = {"ask", "-m", test::source_path("models/frugal-think-q8_0.gguf").string(),
                                     "--docs", dir_.string(), "How many staff work at the clinics of Marketby in all?",
                                     "--json", "-n", "200"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto result = run_frugal(args);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return json::parse(result.out);
  }
  static inline std::filesystem::path dir_;
};

TEST_F(ThinkingCli, AskReportsThinkingApartAndHonoursBudgetsAndOff) {
  const json full = ask({});
  EXPECT_GT(full["thinking_tokens"].get<int>(), 0);
  EXPECT_FALSE(full["thinking"].get<std::string>().empty());
  const json cut = ask({"--reasoning-budget", "8"});
  EXPECT_TRUE(cut["thinking_cut"].get<bool>());
  // The open marker, 8 tokens, a newline frugal may add, the close marker.
  EXPECT_LE(cut["thinking_tokens"].get<int>(), 11);
  EXPECT_EQ(cut["answer"].get<std::string>().find("</think>"), std::string::npos);
  EXPECT_EQ(cut["answer"].get<std::string>().find("<think>"), std::string::npos);
  const json off = ask({"--thinking", "off"});
  EXPECT_EQ(off["thinking_tokens"], 0);
  EXPECT_EQ(off["thinking"], "");
  EXPECT_FALSE(off["answer"].get<std::string>().empty());
  EXPECT_EQ(ask({"--reasoning-budget", "0"})["token_ids"], off["token_ids"]);  // budget 0 is off
}

TEST_F(ThinkingCli, AModelThatDoesNotThinkRefusesThinkingFlags) {
  for (const std::vector<std::string> flags : {std::vector<std::string>{"--thinking", "on"},
                                               {"--reasoning-budget", "16"},
                                               {"--reasoning-exit", "confidence:0.9"}}) {
    std::vector<std::string> args = {"ask", "--docs", dir_.string(), "Where is the Harlow Clinic?"};
    args.insert(args.end(), flags.begin(), flags.end());
    const auto result = run_frugal(args);
    EXPECT_NE(result.exit_code, 0) << flags[0];
    EXPECT_NE(result.err.find("does not think"), std::string::npos) << result.err;
  }
  const auto bad = run_frugal({"ask", "-m", test::source_path("models/frugal-think-q8_0.gguf").string(), "--docs",
                               dir_.string(), "Where?", "--reasoning-exit", "sure:0.9"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("confidence:T"), std::string::npos) << bad.err;
}

TEST_F(ThinkingCli, OaeRowsForThinkingMethods) {
  const auto out = dir_ / "oae";
  const auto result = run_frugal({"oae", "run", "-m", test::source_path("models/frugal-think-q8_0.gguf").string(),
                                  "--dataset", test::source_path("examples/demo-world-hotpot.json").string(),
                                  "--methods", "think,nothink,think@budget:8,think@exit:confidence:0.5",
                                  "--n-questions", "3", "--size", "small", "--estimate-energy", "--out",
                                  out.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::ifstream in(out / "report.json");
  const json report = json::parse(in);
  std::map<std::string, json> per_query;
  for (const auto& m : report["methods"]) per_query[m["name"]] = m["per_query"];
  EXPECT_GT(per_query["think"]["thinking_tokens_mean"].get<double>(), 11);
  EXPECT_EQ(per_query["nothink"]["thinking_tokens_mean"].get<double>(), 0);
  EXPECT_LE(per_query["think@budget:8"]["thinking_tokens_mean"].get<double>(), 11);
  EXPECT_GT(per_query["think@exit:confidence:0.5"]["probe_tokens_mean"].get<double>(), 0);
  std::ifstream md(out / "report.md");
  std::stringstream text;
  text << md.rdbuf();
  EXPECT_NE(text.str().find("## Thinking: accuracy against thinking tokens"), std::string::npos);

  const auto refused = run_frugal({"oae", "run", "--dataset",
                                   test::source_path("examples/demo-world-hotpot.json").string(), "--methods", "think",
                                   "--n-questions", "2", "--size", "small", "--out", (dir_ / "oae2").string()});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("does not think"), std::string::npos) << refused.err;
}

}  // namespace
}  // namespace frugal
