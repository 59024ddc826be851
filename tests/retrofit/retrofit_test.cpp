// Fewer KV heads: the Procrustes solver recovers a known rotation; the
// aligned merge's turns, folded in without averaging, leave the model's
// logits as they were (so every turn and reordering is exact); the mean
// merge's key and value rows are the averages of the old heads' rows
// (read back from both files); and a merged model runs with fewer heads.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "frugal/error.h"
#include "frugal/gguf.h"
#include "frugal/model.h"
#include "frugal/quant.h"
#include "frugal/retrofit.h"
#include "retrofit/kv_head_merge.h"
#include "retrofit/procrustes.h"
#include "support/model_builder.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

std::vector<double> random_matrix(size_t rows, size_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d;
  std::vector<double> m(rows * cols);
  for (double& x : m) x = d(rng);
  return m;
}

TEST(Procrustes, RecoversAKnownRotation) {
  const size_t n = 8, tokens = 50;
  // A rotation: Gram-Schmidt of a random matrix.
  std::vector<double> q = random_matrix(n, n, 1);
  for (size_t j = 0; j < n; ++j) {
    for (size_t k = 0; k < j; ++k) {
      double dot = 0;
      for (size_t i = 0; i < n; ++i) dot += q[i * n + j] * q[i * n + k];
      for (size_t i = 0; i < n; ++i) q[i * n + j] -= dot * q[i * n + k];
    }
    double norm = 0;
    for (size_t i = 0; i < n; ++i) norm += q[i * n + j] * q[i * n + j];
    for (size_t i = 0; i < n; ++i) q[i * n + j] /= std::sqrt(norm);
  }
  const std::vector<double> a = random_matrix(tokens, n, 2);
  std::vector<double> b(tokens * n, 0.0), cross(n * n, 0.0);
  for (size_t t = 0; t < tokens; ++t) {
    for (size_t j = 0; j < n; ++j) {
      for (size_t k = 0; k < n; ++k) b[t * n + j] += a[t * n + k] * q[k * n + j];
    }
  }
  for (size_t t = 0; t < tokens; ++t) {
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) cross[i * n + j] += a[t * n + i] * b[t * n + j];
    }
  }
  const std::vector<double> r = retrofit::orthogonal_procrustes(cross, n);
  for (size_t i = 0; i < n * n; ++i) EXPECT_NEAR(r[i], q[i], 1e-9) << i;
}

// Fewer samples than dimensions leave singular directions: R must still be
// a rotation (R R^T = I), or folding it into another projection would not
// be exact.
TEST(Procrustes, StaysOrthogonalWhenTheSamplesDoNotSpan) {
  const size_t n = 8, tokens = 3;
  const std::vector<double> a = random_matrix(tokens, n, 3), b = random_matrix(tokens, n, 4);
  std::vector<double> cross(n * n, 0.0);
  for (size_t t = 0; t < tokens; ++t) {
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) cross[i * n + j] += a[t * n + i] * b[t * n + j];
    }
  }
  const std::vector<double> r = retrofit::orthogonal_procrustes(cross, n);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) {
      double dot = 0;
      for (size_t k = 0; k < n; ++k) dot += r[i * n + k] * r[j * n + k];
      EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-9) << i << " " << j;
    }
  }
}

class Retrofit : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("retrofit");
    test::RandomModelSpec spec;
    spec.architecture = GetParam();
    spec.heads = 8;
    spec.kv_heads = 4;
    spec.head_size = 16;
    spec.qkv_bias = GetParam() == "qwen2";
    input_ = test::write_random_model(spec, dir_ / "in.gguf");
    for (int i = 0; i < 300; ++i) calibration_.push_back(static_cast<TokenId>((i * 37 + 5) % 90 + 1));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<float> logits(const std::filesystem::path& path) {
    auto model = Model::load(path, {.threads = 2});
    KvCache cache(model->config(), 64);
    const std::vector<TokenId> prompt = {3, 17, 42, 8, 55, 61, 2, 9, 77, 12};
    return model->forward(prompt, cache, true);
  }

  std::filesystem::path dir_, input_;
  std::vector<TokenId> calibration_;
};

TEST_P(Retrofit, AlignedTurnsFoldedInChangeNothing) {
  RetrofitOptions options;
  options.kv_heads = 2;
  options.calibration = calibration_;
  const RetrofitReport report = retrofit::merge_kv_heads(input_, dir_ / "turned.gguf", options, false);
  EXPECT_EQ(report.kv_heads_after, 4);
  const std::vector<float> before = logits(input_), after = logits(dir_ / "turned.gguf");
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) ASSERT_NEAR(after[i], before[i], 2e-3 * (1 + std::fabs(before[i]))) << i;
  // Something was turned: the key rows differ from the input's.
  const GgufFile a = GgufFile::open(input_), b = GgufFile::open(dir_ / "turned.gguf");
  const GgufTensor* ka = a.find_tensor("blk.0.attn_v.weight");
  const GgufTensor* kb = b.find_tensor("blk.0.attn_v.weight");
  EXPECT_NE(std::vector<uint8_t>(ka->data, ka->data + ka->size_bytes),
            std::vector<uint8_t>(kb->data, kb->data + kb->size_bytes));
}

TEST_P(Retrofit, MeanMergeAveragesConsecutiveHeads) {
  RetrofitOptions options;
  options.kv_heads = 2;
  options.merge = HeadMerge::Mean;
  const RetrofitReport report = retrofit_kv_heads(input_, dir_ / "mean.gguf", options);
  EXPECT_EQ(report.kv_heads_after, 2);
  EXPECT_EQ(2 * report.kv_bytes_per_token_after, report.kv_bytes_per_token_before);
  const GgufFile a = GgufFile::open(input_), b = GgufFile::open(dir_ / "mean.gguf");
  for (const char* name : {"blk.1.attn_k.weight", "blk.1.attn_v.weight"}) {
    const GgufTensor* old_t = a.find_tensor(name);
    const GgufTensor* new_t = b.find_tensor(name);
    const auto width = static_cast<size_t>(old_t->shape[0]);
    ASSERT_EQ(new_t->shape[1] * 2, old_t->shape[1]);
    std::vector<float> x(width), y(width), merged(width);
    const size_t old_row = tensor_row_bytes(old_t->type, width), new_row = tensor_row_bytes(new_t->type, width);
    for (size_t r = 0; r < static_cast<size_t>(new_t->shape[1]); ++r) {
      const size_t head = r / 16, i = r % 16;  // new head j = old heads 2j, 2j + 1
      dequantize_row(old_t->type, old_t->data + ((2 * head) * 16 + i) * old_row, x.data(), width);
      dequantize_row(old_t->type, old_t->data + ((2 * head + 1) * 16 + i) * old_row, y.data(), width);
      dequantize_row(new_t->type, new_t->data + r * new_row, merged.data(), width);
      for (size_t c = 0; c < width; ++c) ASSERT_NEAR(merged[c], 0.5f * (x[c] + y[c]), 1e-2) << name << " " << r;
    }
  }
  auto model = Model::load(dir_ / "mean.gguf", {.threads = 2});
  EXPECT_EQ(model->config().kv_head_count, 2);
  EXPECT_EQ(logits(dir_ / "mean.gguf").size(), logits(input_).size());
}

TEST_P(Retrofit, BadCountsAndMissingCalibrationAreRefused) {
  RetrofitOptions options;
  options.kv_heads = 3;
  options.merge = HeadMerge::Mean;
  EXPECT_THROW(retrofit_kv_heads(input_, dir_ / "x.gguf", options), Error);
  options.kv_heads = 2;
  options.merge = HeadMerge::Aligned;
  EXPECT_THROW(retrofit_kv_heads(input_, dir_ / "x.gguf", options), Error);
  EXPECT_THROW(retrofit_kv_heads(input_, input_, options), Error);
}

INSTANTIATE_TEST_SUITE_P(Architectures, Retrofit, ::testing::Values("llama", "qwen2", "qwen3"));

}  // namespace
}  // namespace frugal
