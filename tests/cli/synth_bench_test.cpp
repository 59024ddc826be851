// End-to-end tests of `frugal synth` (random-weight models of real shapes,
// llama-quantize's type mixes) and `frugal bench` (never its timings).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "frugal/gguf.h"
#include "frugal/model.h"
#include "frugal/tokenizer.h"
#include "support/cli_runner.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using test::run_frugal;

std::string gpt2_vocab() { return test::shared_path("vocab/ggml-vocab-gpt-2.gguf").string(); }

std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

class Synth : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::scratch_dir("synth"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs `frugal synth` with the GPT-2 vocabulary into `name` and returns its
  // path; fails the test if the command fails.
  std::filesystem::path synth(const std::string& name, std::vector<std::string> args) {
    const auto path = dir_ / name;
    if (std::find(args.begin(), args.end(), "-t") == args.end()) args.insert(args.end(), {"-t", "2"});
    args.insert(args.begin(), {"synth", "--vocab", gpt2_vocab(), "-o", path.string()});
    const auto result = run_frugal(args);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    EXPECT_NE(result.out.find("params"), std::string::npos) << result.out;
    return path;
  }

  std::filesystem::path dir_;
};

// A small llama with rows of 256, so every K type applies without fallback.
const std::vector<std::string> kSmallLlama = {"--arch",    "llama", "--embedding", "256", "--layers", "8",
                                              "--heads",   "4",     "--kv-heads",  "2",   "--ffn",    "512",
                                              "--context", "128"};

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

TensorType type_of(const GgufFile& file, const std::string& name) { return file.require_tensor(name).type; }

TEST_F(Synth, Q4KMGivesMoreBitsToOutputAndTheChosenLayers) {
  const auto path = synth("q4km.gguf", with(kSmallLlama, {"--type", "Q4_K_M"}));
  auto model = Model::load(path, {.threads = 1});
  const GgufFile& file = model->file();
  EXPECT_EQ(model->config().layer_count, 8);
  EXPECT_TRUE(model->config().tied_embeddings);
  // Tied: the token embeddings are the output matrix, so they get Q6_K.
  EXPECT_EQ(type_of(file, "token_embd.weight"), TensorType::Q6_K);
  EXPECT_EQ(file.find_tensor("output.weight"), nullptr);
  // use_more_bits(i, 8): i < 1, i >= 7, or (i - 1) % 3 == 2  ->  0, 3, 6, 7.
  const std::set<int> more_bits = {0, 3, 6, 7};
  for (int i = 0; i < 8; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    const TensorType expected = more_bits.count(i) ? TensorType::Q6_K : TensorType::Q4_K;
    EXPECT_EQ(type_of(file, p + "attn_v.weight"), expected) << i;
    EXPECT_EQ(type_of(file, p + "ffn_down.weight"), expected) << i;
    for (const char* other : {"attn_q.weight", "attn_k.weight", "attn_output.weight", "ffn_gate.weight",
                              "ffn_up.weight"}) {
      EXPECT_EQ(type_of(file, p + other), TensorType::Q4_K) << p << other;
    }
    EXPECT_EQ(type_of(file, p + "attn_norm.weight"), TensorType::F32);
    EXPECT_EQ(type_of(file, p + "ffn_norm.weight"), TensorType::F32);
  }
  const GgufTensor& down = file.require_tensor("blk.5.ffn_down.weight");
  EXPECT_EQ(down.shape[0], 512);
  EXPECT_EQ(down.shape[1], 256);
  const GgufTensor& k = file.require_tensor("blk.0.attn_k.weight");
  EXPECT_EQ(k.shape[0], 256);
  EXPECT_EQ(k.shape[1], 2 * 64);
  EXPECT_EQ(file.get_int("general.file_type"), 15);  // LLAMA_FTYPE_MOSTLY_Q4_K_M
}

TEST_F(Synth, Q4KSAndUntiedOutput) {
  const auto path = synth("q4ks.gguf", with(kSmallLlama, {"--type", "q4_k_s", "--untied"}));
  const GgufFile file = GgufFile::open(path);
  // Untied: output.weight gets Q6_K, the token embeddings keep the base type.
  EXPECT_EQ(type_of(file, "output.weight"), TensorType::Q6_K);
  EXPECT_EQ(type_of(file, "token_embd.weight"), TensorType::Q4_K);
  for (int i = 0; i < 8; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    // attn_v: Q5_K in the first four layers; ffn_down: Q5_K in the first eighth.
    EXPECT_EQ(type_of(file, p + "attn_v.weight"), i < 4 ? TensorType::Q5_K : TensorType::Q4_K) << i;
    EXPECT_EQ(type_of(file, p + "ffn_down.weight"), i < 1 ? TensorType::Q5_K : TensorType::Q4_K) << i;
  }
  EXPECT_NO_THROW(Model::load(path, {.threads = 1}));
}

TEST_F(Synth, RowsThatAreNotWholeKBlocksFallBackAsLlamaQuantize) {
  // SmolLM2's 576-wide rows are not whole 256-element blocks.
  const auto path = synth("smol.gguf", {"--shape", "smollm2-135m", "--layers", "2", "--type", "Q4_K_M"});
  const GgufFile file = GgufFile::open(path);
  EXPECT_EQ(type_of(file, "token_embd.weight"), TensorType::Q8_0);
  EXPECT_EQ(type_of(file, "blk.0.attn_q.weight"), TensorType::Q5_0);  // Q4_K -> Q5_0
  // With 2 layers only layer 1 gets more bits: Q6_K, or Q8_0 for 576 rows.
  EXPECT_EQ(type_of(file, "blk.0.attn_v.weight"), TensorType::Q5_0);
  EXPECT_EQ(type_of(file, "blk.1.attn_v.weight"), TensorType::Q8_0);
  EXPECT_EQ(type_of(file, "blk.0.ffn_down.weight"), TensorType::Q4_K);  // 1536 rows are whole blocks
  EXPECT_EQ(type_of(file, "blk.1.ffn_down.weight"), TensorType::Q6_K);
  EXPECT_NO_THROW(Model::load(path, {.threads = 1}));
}

TEST_F(Synth, SingleTypesApplyToEveryMatrixButTheOutput) {
  // As llama-quantize without --pure: the (tied) output matrix gets Q6_K when
  // its rows are whole 256-element blocks, Q8_0 otherwise.
  const auto path = synth("q4_0.gguf", with(kSmallLlama, {"--type", "Q4_0", "--layers", "2"}));
  const GgufFile file = GgufFile::open(path);
  for (const auto& t : file.tensors()) {
    const TensorType expected = t.n_dims != 2                 ? TensorType::F32
                                : t.name == "token_embd.weight" ? TensorType::Q6_K
                                                                : TensorType::Q4_0;
    EXPECT_EQ(t.type, expected) << t.name;
  }
  const auto smol = synth("smol_q4_0.gguf", {"--shape", "smollm2-135m", "--layers", "1", "--type", "Q4_0"});
  EXPECT_EQ(type_of(GgufFile::open(smol), "token_embd.weight"), TensorType::Q8_0);  // 576 % 256 != 0
  const auto q8 = synth("q8_0.gguf", with(kSmallLlama, {"--type", "Q8_0", "--layers", "1"}));
  EXPECT_EQ(type_of(GgufFile::open(q8), "token_embd.weight"), TensorType::Q8_0);
}

TEST_F(Synth, NamedShapesWriteTheirDimensions) {
  {
    auto model = Model::load(synth("smol.gguf", {"--shape", "smollm2-135m", "--layers", "2"}), {.threads = 1});
    const ModelConfig& c = model->config();
    EXPECT_EQ(c.architecture, "llama");
    EXPECT_EQ(c.embedding_size, 576);
    EXPECT_EQ(c.layer_count, 2);
    EXPECT_EQ(c.head_count, 9);
    EXPECT_EQ(c.kv_head_count, 3);
    EXPECT_EQ(c.head_size, 64);
    EXPECT_EQ(c.feed_forward_size, 1536);
    EXPECT_EQ(c.training_context, 8192);
    EXPECT_FLOAT_EQ(c.rope_freq_base, 100000.0f);
    EXPECT_TRUE(c.tied_embeddings);
    EXPECT_FALSE(c.qkv_bias);
    EXPECT_EQ(c.vocab_size, 50257);
    EXPECT_EQ(model->file().get_string("general.name"), "smollm2-135m");
    EXPECT_EQ(type_of(model->file(), "blk.0.attn_q.weight"), TensorType::Q8_0);  // the default type
  }
  {
    auto model = Model::load(synth("qwen.gguf", {"--shape", "qwen2.5-0.5b", "--layers", "1", "--type", "Q4_0"}),
                             {.threads = 1});
    const ModelConfig& c = model->config();
    EXPECT_EQ(c.architecture, "qwen2");
    EXPECT_EQ(c.embedding_size, 896);
    EXPECT_EQ(c.head_count, 14);
    EXPECT_EQ(c.kv_head_count, 2);
    EXPECT_EQ(c.feed_forward_size, 4864);
    EXPECT_EQ(c.training_context, 32768);
    EXPECT_FLOAT_EQ(c.rope_freq_base, 1e6f);
    EXPECT_FLOAT_EQ(c.rms_epsilon, 1e-6f);
    EXPECT_TRUE(c.qkv_bias);
    EXPECT_TRUE(c.tied_embeddings);
    EXPECT_EQ(model->file().require_tensor("blk.0.attn_k.bias").element_count(), 128);
  }
  {
    // Llama 3.2 keeps its rope scaling in a rope_freqs tensor, as llama.cpp's converter writes it.
    auto model = Model::load(synth("llama.gguf", {"--shape", "llama-3.2-1b", "--layers", "1", "--ffn", "256",
                                                  "--type", "Q4_0"}),
                             {.threads = 1});
    const ModelConfig& c = model->config();
    EXPECT_EQ(c.embedding_size, 2048);
    EXPECT_EQ(c.head_count, 32);
    EXPECT_EQ(c.kv_head_count, 8);
    EXPECT_EQ(c.feed_forward_size, 256);  // overridden
    EXPECT_FLOAT_EQ(c.rope_freq_base, 500000.0f);
    const GgufTensor& freqs = model->file().require_tensor("rope_freqs.weight");
    ASSERT_EQ(freqs.element_count(), 32);
    const float* factors = reinterpret_cast<const float*>(freqs.data);
    EXPECT_FLOAT_EQ(factors[0], 1.0f);    // short wavelengths are not scaled
    EXPECT_FLOAT_EQ(factors[31], 32.0f);  // long ones by the full factor
  }
}

TEST_F(Synth, SameSeedSameBytesOtherSeedOtherBytes) {
  const auto small = with(kSmallLlama, {"--layers", "2", "--type", "Q4_K_M"});
  const auto a = synth("a.gguf", with(small, {"--seed", "7"}));
  const auto b = synth("b.gguf", with(small, {"--seed", "7", "-t", "1"}));  // thread count does not matter
  const auto c = synth("c.gguf", with(small, {"--seed", "8"}));
  const std::string bytes_a = file_bytes(a);
  EXPECT_EQ(bytes_a, file_bytes(b));
  EXPECT_NE(bytes_a, file_bytes(c));
  EXPECT_EQ(bytes_a.size(), file_bytes(c).size());
}

TEST_F(Synth, CopiesTheVocabulary) {
  const auto path = synth("vocab.gguf", with(kSmallLlama, {"--layers", "1"}));
  const GgufFile ours = GgufFile::open(path), vocab = GgufFile::open(gpt2_vocab());
  const auto a = Tokenizer::from_gguf(ours), b = Tokenizer::from_gguf(vocab);
  const std::string text = "Hello world! Frugal inference, 2 cores and 1234 tokens.";
  EXPECT_EQ(a->encode(text, true, false), b->encode(text, true, false));
  EXPECT_FALSE(a->encode(text, true, false).empty());
  EXPECT_EQ(a->vocab_size(), 50257);
  for (const auto& [key, value] : vocab.metadata()) {
    if (key.starts_with("tokenizer.")) {
      EXPECT_NE(ours.find(key), nullptr) << key;
    }
  }
}

TEST_F(Synth, BadRequestsAreClearErrors) {
  const auto out = (dir_ / "bad.gguf").string();
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"synth", "--vocab", gpt2_vocab(), "-o", out});
    return run_frugal(args);
  };
  const auto shape = run({"--shape", "gpt-5"});
  EXPECT_EQ(shape.exit_code, 1);
  EXPECT_NE(shape.err.find("unknown model shape 'gpt-5'"), std::string::npos) << shape.err;
  EXPECT_NE(shape.err.find("smollm2-135m, qwen2.5-0.5b, llama-3.2-1b"), std::string::npos) << shape.err;

  const auto type = run({"--shape", "smollm2-135m", "--type", "Q9_K"});
  EXPECT_EQ(type.exit_code, 1);
  EXPECT_NE(type.err.find("unknown weight type 'Q9_K'"), std::string::npos) << type.err;
  EXPECT_NE(type.err.find("Q4_K_M"), std::string::npos) << type.err;

  const auto split = run({"--embedding", "100", "--layers", "1", "--heads", "3", "--ffn", "64"});
  EXPECT_EQ(split.exit_code, 1);
  EXPECT_NE(split.err.find("embedding size 100 is not divisible by 3 heads"), std::string::npos) << split.err;

  const auto gqa = run({"--embedding", "64", "--layers", "1", "--heads", "4", "--kv-heads", "3", "--ffn", "64"});
  EXPECT_EQ(gqa.exit_code, 1);
  EXPECT_NE(gqa.err.find("multiple of the key/value head count"), std::string::npos) << gqa.err;

  const auto missing = run({"--embedding", "64"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("give --shape NAME"), std::string::npos) << missing.err;

  const auto no_vocab = run_frugal({"synth", "--shape", "smollm2-135m", "--vocab",
                                    test::shared_path("models/SHA256SUMS").string(), "-o", out});
  EXPECT_EQ(no_vocab.exit_code, 1);
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST_F(Synth, BenchPrintsBothTestsAndParsableJson) {
  const auto path = synth("bench.gguf", with(kSmallLlama, {"--layers", "2"}));
  const auto table = run_frugal({"bench", "-m", path.string(), "-t", "2", "-p", "8", "-n", "4", "-r", "2"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("| model | size | params | threads | test | t/s |"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("| pp8 |"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("| tg4 |"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("custom Q8_0"), std::string::npos) << table.out;

  const auto json = run_frugal({"bench", "-m", path.string(), "-t", "2", "-p", "8", "-n", "4", "-r", "2", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto result = nlohmann::json::parse(json.out);
  for (const char* key : {"model", "file", "model_size", "model_n_params", "n_threads", "repetitions",
                          "weight_bytes_per_token", "tests"}) {
    EXPECT_TRUE(result.contains(key)) << key;
  }
  EXPECT_EQ(result["n_threads"], 2);
  ASSERT_EQ(result["tests"].size(), 2u);
  EXPECT_EQ(result["tests"][0]["test"], "pp8");
  EXPECT_EQ(result["tests"][1]["test"], "tg4");
  for (const auto& test : result["tests"]) {
    EXPECT_GT(test["avg_ts"].get<double>(), 0.0);
    EXPECT_GE(test["stddev_ts"].get<double>(), 0.0);
    EXPECT_EQ(test["samples_ts"].size(), 2u);
  }
  EXPECT_GT(result["tests"][1]["avg_gbps"].get<double>(), 0.0);
  // Bytes per decoded token: every layer matrix plus the (tied) output matrix.
  const GgufFile file = GgufFile::open(path);
  uint64_t expected = file.require_tensor("token_embd.weight").size_bytes;
  for (const auto& t : file.tensors()) {
    if (t.name.starts_with("blk.") && t.n_dims == 2) expected += t.size_bytes;
  }
  EXPECT_EQ(result["weight_bytes_per_token"].get<uint64_t>(), expected);

  const auto nothing = run_frugal({"bench", "-m", path.string(), "-p", "0", "-n", "0"});
  EXPECT_EQ(nothing.exit_code, 1);
  EXPECT_NE(nothing.err.find("nothing to measure"), std::string::npos) << nothing.err;
}

}  // namespace
}  // namespace frugal
