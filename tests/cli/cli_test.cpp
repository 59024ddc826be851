// End-to-end tests of the frugal binary: outputs compared with the reference
// fixtures, and bad input turned into clear errors with a non-zero exit.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support/cli_runner.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using test::run_frugal;

std::vector<nlohmann::ordered_json> read_jsonl(const std::string& text) {
  std::vector<nlohmann::ordered_json> records;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) records.push_back(nlohmann::ordered_json::parse(line));
  return records;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string model_path(const std::string& name) { return test::shared_path("models/" + name + ".gguf").string(); }

// The reference was made with an F32 KV cache (../shared/README.md), so
// this run asks for one; the default F16 cache moves logits by ~2e-3.
TEST(CliLogits, WritesTheReferenceFormatAndValues) {
  const auto result = run_frugal({"logits", "-m", model_path("tiny-llama-spm"), "-t", "2", "--cache-type", "f32",
                                  "-f", test::shared_path("fixtures/reference/prompts.txt").string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto ours = read_jsonl(result.out);
  const auto reference = read_jsonl(read_file(test::shared_path("fixtures/reference/tiny-llama-spm.jsonl")));
  ASSERT_EQ(ours.size(), reference.size());
  for (size_t i = 0; i < ours.size(); ++i) {
    std::vector<std::string> our_keys, reference_keys;
    for (const auto& [key, value] : ours[i].items()) our_keys.push_back(key);
    for (const auto& [key, value] : reference[i].items()) reference_keys.push_back(key);
    EXPECT_EQ(our_keys, reference_keys);
    EXPECT_EQ(ours[i]["prompt"], reference[i]["prompt"]);
    EXPECT_EQ(ours[i]["tokens"], reference[i]["tokens"]);
    EXPECT_EQ(ours[i]["greedy"], reference[i]["greedy"]);
    EXPECT_EQ(ours[i]["greedy_text"], reference[i]["greedy_text"]);
    const auto& positions = ours[i]["positions"];
    ASSERT_EQ(positions.size(), reference[i]["positions"].size());
    for (size_t p = 0; p < positions.size(); ++p) {
      const auto& a = positions[p]["top"];
      const auto& b = reference[i]["positions"][p]["top"];
      ASSERT_EQ(a.size(), 10u);
      EXPECT_EQ(a[0][0], b[0][0]);
      EXPECT_NEAR(a[0][1].get<double>(), b[0][1].get<double>(), 1e-3);
      EXPECT_NEAR(positions[p]["logsumexp"].get<double>(), reference[i]["positions"][p]["logsumexp"].get<double>(),
                  1e-3);
    }
  }
  // Python's json.dumps separators, so files diff line by line.
  EXPECT_EQ(result.out.rfind("{\"prompt\": \"Once upon a time", 0), 0u) << result.out.substr(0, 80);
  EXPECT_NE(result.out.find("\"top\": [[1, 33.82"), std::string::npos);
}

TEST(CliRun, GreedyTextEqualsReferenceContinuation) {
  const auto reference = read_jsonl(read_file(test::shared_path("fixtures/reference/tiny-llama-spm.jsonl")));
  for (size_t i : {0u, 2u}) {
    const std::string prompt = reference[i]["prompt"];
    const auto result = run_frugal({"run", "-m", model_path("tiny-llama-spm"), "-p", prompt, "--no-escape", "-n",
                                    "24", "--temp", "0", "-q"});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_EQ(result.out, reference[i]["greedy_text"].get<std::string>() + "\n");
  }
}

TEST(CliRun, SampledRunsRepeatWithTheSameSeed) {
  auto once = [] {
    return run_frugal({"run", "-m", model_path("tiny-qwen2-gpt2"), "-p", "Hello", "-n", "12", "--temp", "1.0",
                       "-s", "42", "-q"});
  };
  const auto a = once(), b = once();
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_FALSE(a.out.empty());
}

TEST(CliRun, ChatTemplateOverrideAndErrors) {
  auto ok = run_frugal({"run", "-m", model_path("tiny-qwen2-gpt2"), "-p", "Hi", "--chat", "--chat-template",
                        "chatml", "--show-prompt", "-n", "4", "--temp", "0", "-q"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out.rfind("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", 0), 0u) << ok.out;

  auto missing = run_frugal({"run", "-m", model_path("tiny-llama-spm"), "-p", "Hi", "--chat"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("--chat-template"), std::string::npos) << missing.err;

  auto unknown = run_frugal({"run", "-m", model_path("tiny-llama-spm"), "-p", "Hi", "--chat", "--chat-template",
                             "klingon"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("unknown chat template 'klingon'"), std::string::npos) << unknown.err;
}

TEST(CliErrors, BadModelFilesGiveClearMessages) {
  const auto dir = test::scratch_dir("cli-bad");
  std::ofstream(dir / "text.gguf") << "this is not a model";
  auto garbage = run_frugal({"run", "-m", (dir / "text.gguf").string(), "-p", "x"});
  EXPECT_EQ(garbage.exit_code, 1);
  EXPECT_NE(garbage.err.find("not a GGUF file"), std::string::npos) << garbage.err;
  EXPECT_TRUE(garbage.out.empty());

  const std::string model = read_file(model_path("tiny-llama-spm"));
  std::ofstream(dir / "truncated.gguf", std::ios::binary) << model.substr(0, model.size() / 2);
  auto truncated = run_frugal({"run", "-m", (dir / "truncated.gguf").string(), "-p", "x"});
  EXPECT_EQ(truncated.exit_code, 1);
  EXPECT_NE(truncated.err.find("truncated"), std::string::npos) << truncated.err;

  auto vocab_only = run_frugal({"run", "-m", test::shared_path("vocab/ggml-vocab-gpt-2.gguf").string(), "-p", "x"});
  EXPECT_EQ(vocab_only.exit_code, 1);
  EXPECT_NE(vocab_only.err.find("error:"), std::string::npos) << vocab_only.err;

  auto no_file = run_frugal({"run", "-m", (dir / "missing.gguf").string(), "-p", "x"});
  EXPECT_NE(no_file.exit_code, 0);
  EXPECT_NE(no_file.err.find("missing.gguf"), std::string::npos) << no_file.err;

  auto no_prompt = run_frugal({"run", "-m", model_path("tiny-llama-spm")});
  EXPECT_NE(no_prompt.exit_code, 0);
  EXPECT_NE(no_prompt.err.find("-p"), std::string::npos) << no_prompt.err;

  auto too_long = run_frugal({"run", "-m", model_path("tiny-llama-spm"), "-p", "one two three four five", "-c", "4"});
  EXPECT_EQ(too_long.exit_code, 1);
  EXPECT_NE(too_long.err.find("does not fit in the context"), std::string::npos) << too_long.err;
  std::filesystem::remove_all(dir);
}

TEST(CliInfoAndTokenize, DescribeModelsAndSplitText) {
  auto info = run_frugal({"info", model_path("mini-llama-spm-q4_k_m")});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_NE(info.out.find("architecture:  llama"), std::string::npos);
  EXPECT_NE(info.out.find("Q4_K x25"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("layers 4, heads 8 (kv 4)"), std::string::npos) << info.out;

  const auto reference = read_jsonl(read_file(test::shared_path("fixtures/reference/tiny-qwen2-gpt2.jsonl")));
  auto ids = run_frugal({"tokenize", "-m", test::shared_path("vocab/ggml-vocab-gpt-2.gguf").string(), "-p",
                         reference[1]["prompt"].get<std::string>(), "--ids"});
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  EXPECT_EQ(nlohmann::json::parse(ids.out), reference[1]["tokens"]);
}

}  // namespace
}  // namespace frugal

namespace frugal {
namespace {

TEST(CliBeam, CompareReportsIdenticalHypothesesAndLessMemory) {
  const auto result = run_frugal({"beam", "-m", test::shared_path("models/tiny-llama-spm.gguf").string(), "-p",
                                  "Once upon a time", "-k", "4", "-n", "6", "--num-return", "2", "--compare", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  EXPECT_TRUE(json["identical"].get<bool>());
  for (const char* impl : {"trie", "batch"}) {
    ASSERT_EQ(json[impl]["hypotheses"].size(), 2u) << impl;
    EXPECT_GT(json[impl]["peak_kv_bytes"].get<double>(), 0) << impl;
    EXPECT_TRUE(json[impl].contains("seconds")) << impl;
  }
  EXPECT_LT(json["trie"]["peak_kv_bytes"].get<double>(), json["batch"]["peak_kv_bytes"].get<double>());
  EXPECT_EQ(json["trie"]["hypotheses"][0]["tokens"], json["batch"]["hypotheses"][0]["tokens"]);

  const auto bad = run_frugal({"beam", "-m", test::shared_path("models/tiny-llama-spm.gguf").string(), "-p", "x",
                               "-k", "2", "--num-return", "3"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("error:"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace frugal
