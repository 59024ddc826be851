// LoRA adapters applied unmerged against the same adapters merged by hand
// (W + s B A in double precision, written as an F32 model): equal logits;
// `merge_lora` against the same; an adapter whose B is zero changes
// nothing; malformed adapters are refused with what is wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "frugal/error.h"
#include "frugal/gguf.h"
#include "frugal/kv_trie.h"
#include "frugal/lora.h"
#include "frugal/model.h"
#include "frugal/quant.h"
#include "support/model_builder.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

// A random low-rank change of some weights of the tiny F32 model
// (embedding 64, feed-forward 192, tied output).
struct AdapterMatrices {
  std::string target;
  int64_t cols, rows, rank;
  std::vector<float> a, b;  // a: rank x cols, b: rows x rank (row-major, as ggml stores [cols, rank], [rank, rows])
};

std::vector<AdapterMatrices> random_adapter(uint32_t seed, bool zero_b = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.2f);
  std::vector<AdapterMatrices> out = {{"blk.0.attn_q.weight", 64, 64, 4, {}, {}},
                                      {"blk.0.attn_v.weight", 64, 32, 4, {}, {}},
                                      {"blk.1.ffn_down.weight", 192, 64, 4, {}, {}},
                                      {"blk.1.ffn_up.weight", 64, 192, 4, {}, {}},
                                      {"output.weight", 64, 32000, 4, {}, {}}};
  for (auto& m : out) {
    m.a.resize(static_cast<size_t>(m.rank * m.cols));
    m.b.resize(static_cast<size_t>(m.rows * m.rank));
    for (float& x : m.a) x = normal(rng);
    for (float& x : m.b) x = zero_b ? 0.0f : normal(rng);
  }
  return out;
}

std::span<const uint8_t> bytes_of(const std::vector<float>& v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float)};
}

void write_adapter(const std::filesystem::path& path, const std::vector<AdapterMatrices>& matrices, float alpha,
                   const std::string& architecture = "llama", const std::string& type = "adapter") {
  GgufWriter writer;
  writer.set("general.architecture", GgufValue::string(architecture));
  writer.set("general.type", GgufValue::string(type));
  writer.set("adapter.type", GgufValue::string("lora"));
  writer.set("adapter.lora.alpha", GgufValue::f32(alpha));
  for (const auto& m : matrices) {
    writer.add_tensor(m.target + ".lora_a", TensorType::F32, {m.cols, m.rank}, bytes_of(m.a));
    writer.add_tensor(m.target + ".lora_b", TensorType::F32, {m.rank, m.rows}, bytes_of(m.b));
  }
  writer.write(path);
}

class Lora : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("lora");
    base_ = test::shared_path("models/tiny-llama-spm.gguf");
    prompt_ = {1, 450, 4996, 17354, 1701, 432, 17204, 975, 278, 17366, 11203};
  }
  std::vector<float> logits(const std::filesystem::path& model_path, std::vector<LoraSpec> loras = {}) const {
    ModelOptions options;
    options.threads = 2;
    options.loras = std::move(loras);
    auto model = Model::load(model_path, options);
    KvCache cache(model->config(), 64);
    return model->forward(prompt_, cache, true);
  }
  std::filesystem::path dir_, base_;
  std::vector<TokenId> prompt_;
};

TEST_F(Lora, UnmergedEqualsMergedByHand) {
  const auto matrices = random_adapter(7);
  const float alpha = 8, scale = 0.75f;  // factor 0.75 * 8 / 4 = 1.5
  write_adapter(dir_ / "adapter.gguf", matrices, alpha);
  // The merge, by hand: the tied model gets an untied output matrix.
  test::rewrite_gguf(base_, dir_ / "merged.gguf", [&](test::GgufEdit& edit) {
    std::vector<float> embedding;
    for (const auto& t : edit.tensors) {
      if (t.name == "token_embd.weight") {
        embedding.assign(reinterpret_cast<const float*>(t.data.data()),
                         reinterpret_cast<const float*>(t.data.data()) + t.data.size() / sizeof(float));
      }
    }
    edit.tensors.push_back({"output.weight", TensorType::F32, {64, 32000},
                            std::vector<uint8_t>(bytes_of(embedding).begin(), bytes_of(embedding).end())});
    for (auto& t : edit.tensors) {
      for (const auto& m : matrices) {
        if (t.name != m.target) continue;
        auto* w = reinterpret_cast<float*>(t.data.data());
        for (int64_t r = 0; r < m.rows; ++r) {
          for (int64_t c = 0; c < m.cols; ++c) {
            double sum = 0;
            for (int64_t k = 0; k < m.rank; ++k) sum += double(m.b[r * m.rank + k]) * m.a[k * m.cols + c];
            w[r * m.cols + c] += static_cast<float>(1.5 * sum);
          }
        }
      }
    }
  });
  const auto unmerged = logits(base_, {{dir_ / "adapter.gguf", scale}});
  const auto merged = logits(dir_ / "merged.gguf");
  const auto base = logits(base_);
  ASSERT_EQ(unmerged.size(), merged.size());
  double worst = 0, moved = 0;
  for (size_t i = 0; i < merged.size(); ++i) {
    worst = std::max(worst, std::abs(double(unmerged[i]) - merged[i]));
    moved = std::max(moved, std::abs(double(unmerged[i]) - base[i]));
  }
  EXPECT_LT(worst, 1e-3) << "unmerged and merged logits differ";
  EXPECT_GT(moved, 0.1) << "the adapter changed nothing: the test would not see a wrong merge";
}

TEST_F(Lora, MergeLoraWritesWhatUnmergedComputes) {
  // The untied Q8_0 mini model: the output can be merged too.
  const auto mini = test::shared_path("models/mini-llama-spm-q8_0.gguf");
  auto model = Model::load(mini, {.threads = 2});
  const auto& c = model->config();
  std::vector<AdapterMatrices> matrices = {{"blk.0.attn_k.weight", c.embedding_size, c.kv_head_count * c.head_size, 2,
                                            {}, {}},
                                           {"blk.0.ffn_gate.weight", c.embedding_size, c.feed_forward_size, 2, {}, {}}};
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  for (auto& m : matrices) {
    m.a.resize(static_cast<size_t>(m.rank * m.cols));
    m.b.resize(static_cast<size_t>(m.rows * m.rank));
    for (float& x : m.a) x = normal(rng);
    for (float& x : m.b) x = normal(rng);
  }
  write_adapter(dir_ / "mini-adapter.gguf", matrices, 0);
  EXPECT_EQ(merge_lora(mini, {{dir_ / "mini-adapter.gguf", 2.0f}}, dir_ / "mini-merged.gguf", TensorType::F32), 2u);
  const GgufFile merged = GgufFile::open(dir_ / "mini-merged.gguf");
  const GgufFile original = GgufFile::open(mini);
  // Each merged row: the stored row dequantized plus 2 * B A, here in double.
  for (const auto& m : matrices) {
    const GgufTensor& out = merged.require_tensor(m.target);
    const GgufTensor& in = original.require_tensor(m.target);
    ASSERT_EQ(out.type, TensorType::F32);
    const auto* w = reinterpret_cast<const float*>(out.data);
    std::vector<float> row(static_cast<size_t>(m.cols));
    for (int64_t r = 0; r < m.rows; ++r) {
      dequantize_row(in.type, in.data + r * tensor_row_bytes(in.type, m.cols), row.data(), row.size());
      for (int64_t col = 0; col < m.cols; ++col) {
        double sum = 0;
        for (int64_t k = 0; k < m.rank; ++k) sum += double(m.b[r * m.rank + k]) * m.a[k * m.cols + col];
        ASSERT_NEAR(w[r * m.cols + col], row[col] + 2 * sum, 1e-5) << m.target << " row " << r;
      }
    }
  }
  // Untouched tensors are copied as they were.
  const GgufTensor& q = merged.require_tensor("blk.0.attn_q.weight");
  EXPECT_EQ(q.type, original.require_tensor("blk.0.attn_q.weight").type);
}

TEST_F(Lora, AZeroChangeChangesNothing) {
  write_adapter(dir_ / "zero.gguf", random_adapter(5, true), 16);
  EXPECT_EQ(logits(base_, {{dir_ / "zero.gguf", 1.0f}}), logits(base_));
  ModelOptions options;
  options.loras = {{dir_ / "zero.gguf", 0.5f}};
  const auto model = Model::load(base_, options);
  ASSERT_EQ(model->loras().size(), 1u);
  EXPECT_EQ(model->loras()[0].matrices, 5u);
  EXPECT_EQ(model->loras()[0].rank, 4);
  EXPECT_FLOAT_EQ(model->loras()[0].alpha, 16);
}

TEST_F(Lora, MalformedAdaptersAreRefused) {
  auto refused = [&](const std::filesystem::path& path, const std::string& expected) {
    try {
      logits(base_, {{path, 1.0f}});
      ADD_FAILURE() << path << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };
  const auto matrices = random_adapter(1);
  write_adapter(dir_ / "qwen.gguf", matrices, 8, "qwen2");
  refused(dir_ / "qwen.gguf", "an adapter for a qwen2 model");
  write_adapter(dir_ / "model.gguf", matrices, 8, "llama", "model");
  refused(dir_ / "model.gguf", "not a LoRA adapter");
  auto wrong = matrices;
  wrong[0].cols = 32;
  wrong[0].a.resize(static_cast<size_t>(wrong[0].rank * 32));
  write_adapter(dir_ / "shape.gguf", wrong, 8);
  refused(dir_ / "shape.gguf", "must be [64, r] and [r, 64]");
  auto embedding = matrices;
  embedding[0].target = "token_embd.weight";
  embedding[0].rows = 32000;
  embedding[0].b.resize(static_cast<size_t>(32000 * embedding[0].rank));
  write_adapter(dir_ / "embedding.gguf", embedding, 8);
  refused(dir_ / "embedding.gguf", "is not supported");
}

// Sequences with their own adapter scales in one batch (the server's
// per-request `lora`): each row equals a model loaded with those scales.
TEST_F(Lora, PerSequenceScalesInOneBatchEqualModelsLoadedWithThem) {
  write_adapter(dir_ / "a.gguf", random_adapter(7), 8);
  write_adapter(dir_ / "b.gguf", random_adapter(9), 8);
  ModelOptions options;
  options.threads = 2;
  options.loras = {{dir_ / "a.gguf", 1.0f}, {dir_ / "b.gguf", 1.0f}};
  auto model = Model::load(base_, options);
  KvTrie trie(model->kv_layout(KvPrecision::F32));
  const std::vector<float> half_a = {0.5f, 0.0f}, none = {0.0f, 0.0f};
  // Three sequences of the same tokens, tagged apart: loaded scales, (0.5, 0), (0, 0).
  const std::pair<uint32_t, const float*> sequences[] = {{0, nullptr}, {1, half_a.data()}, {2, none.data()}};
  std::vector<TrieBatchEntry> entries;
  for (const auto& [tag, scales] : sequences) {
    KvNode node = KvTrie::kRoot;
    for (size_t i = 0; i < prompt_.size(); ++i) {
      node = trie.extend(node, trie_key(prompt_[i], tag));
      entries.push_back({node, i + 1 == prompt_.size(), true, scales});
    }
  }
  const std::vector<float> batched = model->forward(entries, trie);
  const size_t vocab = static_cast<size_t>(model->config().vocab_size);
  ASSERT_EQ(batched.size(), 3 * vocab);
  const std::vector<std::vector<float>> expected = {
      logits(base_, {{dir_ / "a.gguf", 1.0f}, {dir_ / "b.gguf", 1.0f}}),
      logits(base_, {{dir_ / "a.gguf", 0.5f}}),
      logits(base_)};
  for (size_t s = 0; s < 3; ++s) {
    const float* last = expected[s].data() + (prompt_.size() - 1) * vocab;
    double worst = 0;
    for (size_t i = 0; i < vocab; ++i) worst = std::max<double>(worst, std::abs(batched[s * vocab + i] - last[i]));
    EXPECT_LT(worst, 2e-3) << "sequence " << s;
  }
  // The sequences' logits differ: the scales were applied, not shared.
  EXPECT_NE(std::vector<float>(batched.begin(), batched.begin() + vocab),
            std::vector<float>(batched.begin() + vocab, batched.begin() + 2 * vocab));
}

}  // namespace
}  // namespace frugal
