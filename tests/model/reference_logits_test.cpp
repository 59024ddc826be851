// The engine against the reference engine's outputs in ../shared/fixtures:
// same token ids, logits within tolerance at every position (teacher-forced
// on the reference tokens), and the same greedy continuation.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "frugal/model.h"
#include "frugal/tokenizer.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

struct ReferenceCase {
  std::string model;       // file name in shared/models, without .gguf
  double absolute;         // tolerance: absolute + relative * |ref|
  double relative;
  bool greedy_exact;       // all greedy tokens must match
  WeightRepacking repacking = WeightRepacking::Auto;
};

std::ostream& operator<<(std::ostream& os, const ReferenceCase& c) { return os << c.model; }

class ReferenceLogits : public ::testing::TestWithParam<ReferenceCase> {};

TEST_P(ReferenceLogits, MatchesReferenceEngine) {
  const ReferenceCase& param = GetParam();
  ModelOptions options;
  options.threads = 2;
  options.repacking = param.repacking;
  auto model = Model::load(test::shared_path("models/" + param.model + ".gguf"), options);
  if (param.repacking == WeightRepacking::On && model->repacking().matrices == 0) {
    GTEST_SKIP() << "this CPU has no repacked kernels";
  }
  if (param.repacking == WeightRepacking::Off) {
    EXPECT_EQ(model->repacking().matrices, 0u);
  }
  auto tokenizer = Tokenizer::from_gguf(model->file());
  const size_t vocab = static_cast<size_t>(model->config().vocab_size);
  std::ifstream in(test::shared_path("fixtures/reference/" + param.model + ".jsonl"));
  ASSERT_TRUE(in) << "missing fixture for " << param.model;

  double worst_logit_error = 0;
  std::string line;
  int prompts = 0, inconsistent = 0;
  nlohmann::json first_position;  // the reference's logits after the first token alone
  TokenId first_token = -1;
  while (std::getline(in, line)) {
    ++prompts;
    const auto record = nlohmann::json::parse(line);
    const std::string prompt = record["prompt"];
    SCOPED_TRACE("prompt: " + prompt);
    const auto reference_tokens = record["tokens"].get<std::vector<TokenId>>();
    EXPECT_EQ(tokenizer->encode(prompt, true, true), reference_tokens);

    // Every prompt starts with BOS, and position 0 sees nothing else, so a
    // self-consistent reference gives the same logits there for every
    // prompt. The reference's Q4_0 run breaks this for its one prompt of
    // over 32 tokens (a batch-size dependent kernel path in that engine):
    // such a record says nothing about our engine and is left out, loudly,
    // at most once per file.
    if (first_position.is_null()) {
      first_position = record["positions"][0];
      first_token = reference_tokens[0];
    }
    const double drift = reference_tokens[0] != first_token ? 0.0 : std::abs(static_cast<double>(record["positions"][0]["logsumexp"]) -
                                  static_cast<double>(first_position["logsumexp"]));
    if (drift > 0.01) {  // far beyond the 4-decimal rounding of the fixtures
      ++inconsistent;
      std::cout << "[ " << param.model << " ] reference disagrees with itself at position 0 (logsumexp off by "
                << drift << ") for prompt '" << prompt << "': logits of this record not compared\n";
      continue;
    }

    const auto greedy_reference = record["greedy"].get<std::vector<TokenId>>();
    KvCache cache(model->config(), static_cast<int64_t>(reference_tokens.size() + greedy_reference.size() + 1));
    const std::vector<float> logits = model->forward(reference_tokens, cache, true);
    const auto& positions = record["positions"];
    ASSERT_EQ(positions.size(), reference_tokens.size());
    for (size_t p = 0; p < positions.size(); ++p) {
      const float* ours = &logits[p * vocab];
      const auto& top = positions[p]["top"];
      for (const auto& pair : top) {
        const TokenId id = pair[0];
        const double ref = pair[1];
        const double error = std::abs(ours[id] - ref);
        worst_logit_error = std::max(worst_logit_error, error);
        EXPECT_LE(error, param.absolute + param.relative * std::abs(ref))
            << "position " << p << " token " << id << ": ours " << ours[id] << " reference " << ref;
      }
      double max = ours[0];
      for (size_t i = 0; i < vocab; ++i) max = std::max<double>(max, ours[i]);
      double sum = 0;
      for (size_t i = 0; i < vocab; ++i) sum += std::exp(ours[i] - max);
      const double lse = max + std::log(sum), ref_lse = positions[p]["logsumexp"];
      EXPECT_LE(std::abs(lse - ref_lse), param.absolute + param.relative * std::abs(ref_lse)) << "position " << p;
      const double gap = static_cast<double>(top[0][1]) - static_cast<double>(top[1][1]);
      if (gap > param.absolute + param.relative * std::abs(static_cast<double>(top[0][1]))) {
        const TokenId our_top = static_cast<TokenId>(std::max_element(ours, ours + vocab) - ours);
        EXPECT_EQ(our_top, static_cast<TokenId>(top[0][0])) << "position " << p;
      }
    }

    // Greedy continuation. Where our own top-2 gap falls below the tolerance
    // a rounding difference may legitimately flip the choice; past that step
    // the two runs are no longer comparable.
    std::vector<float> last(logits.end() - static_cast<long>(vocab), logits.end());
    size_t comparable = greedy_reference.size();
    for (size_t step = 0; step < greedy_reference.size(); ++step) {
      std::vector<float> sorted(last);
      std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
      const TokenId ours = static_cast<TokenId>(std::max_element(last.begin(), last.end()) - last.begin());
      if (!param.greedy_exact && sorted[0] - sorted[1] < param.absolute + param.relative * std::abs(sorted[0])) {
        comparable = step;
        break;
      }
      ASSERT_EQ(ours, greedy_reference[step]) << "greedy step " << step;
      const TokenId next[1] = {ours};
      last = model->forward(next, cache, false);
    }
    std::cout << "[ " << param.model << " ] greedy tokens compared: " << comparable << " of "
              << greedy_reference.size() << "\n";
  }
  EXPECT_EQ(prompts, 5);
  EXPECT_LE(inconsistent, 1);
  std::cout << "[ " << param.model << " ] largest top-10 logit difference: " << worst_logit_error << "\n";
}

INSTANTIATE_TEST_SUITE_P(
    SharedModels, ReferenceLogits,
    ::testing::Values(ReferenceCase{"tiny-llama-spm", 0.02, 1e-3, true},
                      ReferenceCase{"tiny-qwen2-gpt2", 0.02, 1e-3, false},
                      // The formats repacked at load, both ways (Auto
                      // may choose either on a given CPU).
                      ReferenceCase{"mini-llama-spm-q8_0", 0.35, 0, false, WeightRepacking::On},
                      ReferenceCase{"mini-llama-spm-q8_0", 0.35, 0, false, WeightRepacking::Off},
                      ReferenceCase{"mini-llama-spm-q4_0", 0.35, 0, false, WeightRepacking::On},
                      ReferenceCase{"mini-llama-spm-q4_0", 0.35, 0, false, WeightRepacking::Off},
                      ReferenceCase{"mini-llama-spm-q4_k_m", 0.35, 0, false},
                      // One logit of the 43-token prompt reaches 0.36 here:
                      // ulp-level differences in float summation order flip
                      // a few 8-bit activation roundings at position 8, and
                      // the random weights amplify that along the rest of
                      // that prompt. The other four prompts stay within 0.01.
                      ReferenceCase{"mini-llama-spm-q6_k", 0.40, 0, false}),
    [](const auto& info) {
      std::string name = info.param.model;
      if (info.param.repacking == WeightRepacking::On) name += "_repacked";
      if (info.param.repacking == WeightRepacking::Off) name += "_stored";
      for (auto& c : name) if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      return name;
    });

}  // namespace
}  // namespace frugal
