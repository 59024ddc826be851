// `frugal perplexity`: a run compared with its own base has zero KL
// divergence and the same top token everywhere; 8-bit keys and values
// diverge a little, 4-bit ones more, and the Hadamard-turned 4 bits less
// than ggml's q4_0 on this model; a base over other tokens is refused.
// (Agreement with llama-perplexity's numbers on one file is in
// docs/kv-cache-types.md: tests never run the peer.)
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "support/cli_runner.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using test::run_frugal;

class PerplexityCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("perplexity-cli");
    std::ofstream text(dir_ / "text.txt");
    for (int i = 0; i < 40; ++i) {
      text << "The Harlow Clinic in Westbrook is directed by Dr. Mira Osei, who was born in " << 1950 + i
           << ". The Brook School has " << 300 + 7 * i << " pupils and opens at " << 7 + i % 3 << " am.\n";
    }
  }

  nlohmann::json measure(const std::string& type, bool compare, int context = 64) {
    std::vector<std::string> args = {"perplexity", "-m", model_, "-t", "2", "-c", std::to_string(context),
                                     "--chunks", "4", "-f", (dir_ / "text.txt").string(), "--cache-type", type,
                                     "--kl-divergence-base", (dir_ / "base.bin").string(), "--json"};
    if (compare) args.push_back("--kl-divergence");
    const auto result = run_frugal(args);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return nlohmann::json::parse(result.out);
  }

  std::filesystem::path dir_;
  std::string model_ = test::shared_path("models/mini-llama-spm-q8_0.gguf").string();
};

TEST_F(PerplexityCliTest, KlDivergenceFromTheF32Base) {
  const auto base = measure("f32", false);
  EXPECT_EQ(base["scored_positions"], 4 * 31);
  EXPECT_GT(base["perplexity"].get<double>(), 1.0);
  const auto same = measure("f32", true);
  EXPECT_EQ(same["perplexity"], base["perplexity"]);
  EXPECT_EQ(same["kl_divergence"]["mean"].get<double>(), 0.0);
  EXPECT_EQ(same["kl_divergence"]["same_top"].get<double>(), 1.0);
  const double q8 = measure("q8_0", true)["kl_divergence"]["mean"].get<double>();
  const double q4 = measure("q4_0", true)["kl_divergence"]["mean"].get<double>();
  const double q4h = measure("q4_h", true)["kl_divergence"]["mean"].get<double>();
  EXPECT_GT(q8, 0.0);
  EXPECT_LT(q8, 0.02);
  EXPECT_GT(q4, 2 * q8);
  EXPECT_LT(q4h, q4);
}

TEST_F(PerplexityCliTest, ABaseOverOtherTokensIsRefused) {
  measure("f32", false, 64);
  const auto result = run_frugal({"perplexity", "-m", model_, "-c", "32", "--chunks", "4", "-f",
                                  (dir_ / "text.txt").string(), "--kl-divergence-base", (dir_ / "base.bin").string(),
                                  "--kl-divergence"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("other tokens"), std::string::npos) << result.err;
  const auto missing = run_frugal({"perplexity", "-m", model_, "-f", (dir_ / "text.txt").string(), "--kl-divergence"});
  EXPECT_NE(missing.err.find("--kl-divergence-base"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace frugal
