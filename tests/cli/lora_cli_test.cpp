// LoRA through the CLI: --lora and --lora-scaled change the answer (scale 0
// changes nothing), `frugal lora merge` writes a model that answers as the
// base with --lora does, and a knowledge cache built with an adapter is
// another model's cache.
#include <gtest/gtest.h>

#include <random>

#include "frugal/gguf.h"
#include "support/cli_runner.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using test::run_frugal;

class LoraCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = test::scratch_dir("lora-cli");
    // Rank-4 changes of every projection of the tiny F32 model's layers.
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0.0f, 0.2f);
    GgufWriter writer;
    writer.set("general.architecture", GgufValue::string("llama"));
    writer.set("general.type", GgufValue::string("adapter"));
    writer.set("adapter.type", GgufValue::string("lora"));
    writer.set("adapter.lora.alpha", GgufValue::f32(8));
    const std::pair<const char*, std::pair<int64_t, int64_t>> shapes[] = {
        {"attn_q", {64, 64}}, {"attn_k", {64, 32}}, {"attn_v", {64, 32}}, {"attn_output", {64, 64}},
        {"ffn_gate", {64, 192}}, {"ffn_up", {64, 192}}, {"ffn_down", {192, 64}}};
    for (int layer = 0; layer < 2; ++layer) {
      for (const auto& [part, shape] : shapes) {
        const auto [cols, rows] = shape;
        std::vector<float> a(static_cast<size_t>(cols * 4)), b(static_cast<size_t>(4 * rows));
        for (float& x : a) x = normal(rng);
        for (float& x : b) x = normal(rng);
        const std::string name = "blk." + std::to_string(layer) + "." + part + ".weight";
        writer.add_tensor(name + ".lora_a", TensorType::F32, {cols, 4},
                          {reinterpret_cast<const uint8_t*>(a.data()), a.size() * 4});
        writer.add_tensor(name + ".lora_b", TensorType::F32, {4, rows},
                          {reinterpret_cast<const uint8_t*>(b.data()), b.size() * 4});
      }
    }
    writer.write(dir_ / "adapter.gguf");
  }
  static std::string run(const std::string& model, std::vector<std::string> extra) {
    std::vector<std::string> args = {"run", "-m", model, "-p", "The capital of France is", "-n", "16", "--temp", "0",
                                     "-t", "2", "-q"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto result = run_frugal(args);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return result.out;
  }
  static inline std::filesystem::path dir_;
  static inline const std::string base_ = test::shared_path("models/tiny-llama-spm.gguf").string();
};

TEST_F(LoraCli, AdaptersChangeTheAnswerAndMergedEqualsUnmerged) {
  const std::string adapter = (dir_ / "adapter.gguf").string();
  const std::string plain = run(base_, {});
  const std::string adapted = run(base_, {"--lora", adapter});
  EXPECT_NE(adapted, plain);
  EXPECT_EQ(run(base_, {"--lora-scaled", adapter, "0"}), plain);
  EXPECT_EQ(run(base_, {"--lora-scaled", adapter, "1"}), adapted);

  const std::string merged = (dir_ / "merged.gguf").string();
  const auto result = run_frugal({"lora", "merge", base_, adapter, merged});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("14 matrices"), std::string::npos) << result.err;
  EXPECT_EQ(run(merged, {}), adapted);

  const auto bad = run_frugal({"run", "-m", base_, "-p", "x", "--lora-scaled", adapter, "much"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("the scale must be a number"), std::string::npos) << bad.err;
  const auto wrong_model = run_frugal({"run", "-m", test::shared_path("models/tiny-qwen2-gpt2.gguf").string(), "-p",
                                       "x", "--lora", adapter});
  EXPECT_NE(wrong_model.exit_code, 0);
  EXPECT_NE(wrong_model.err.find("an adapter for a llama model"), std::string::npos) << wrong_model.err;
}

TEST_F(LoraCli, AKnowledgeCacheRemembersItsAdapters) {
  const std::string adapter = (dir_ / "adapter.gguf").string();
  const std::string cache = (dir_ / "town.fkv").string();
  auto result = run_frugal({"kb", "build", "-m", base_, "-t", "2", "--lora", adapter, "--docs",
                            test::source_path("examples/town").string(), "-o", cache});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  result = run_frugal({"ask", "-m", base_, "-t", "2", "--kb", cache, "Who directs the Harlow Clinic?", "-n", "4"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("LoRA adapters: adapter.gguf x1 (cache) vs none (model)"), std::string::npos)
      << result.err;
  result = run_frugal({"ask", "-m", base_, "-t", "2", "--lora", adapter, "--kb", cache,
                       "Who directs the Harlow Clinic?", "-n", "4"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
}

}  // namespace
}  // namespace frugal
