// The BERT encoder against a naive implementation written here from the
// architecture's description (double precision, plain loops, weights read
// straight from the GGUF file), on a random BERT file with the BGE
// WordPiece vocabulary. (bench/embedding_vs_llama_cpp.sh compares it with
// llama.cpp's llama-embedding.)
#include <gtest/gtest.h>

#include <cmath>

#include "frugal/encoder.h"
#include "frugal/error.h"
#include "frugal/model.h"
#include "frugal/quant.h"
#include "support/model_builder.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using Matrix = std::vector<std::vector<double>>;  // [rows][cols] as GGUF stores a weight: row r has cols values

class NaiveBert {
 public:
  explicit NaiveBert(const GgufFile& file) : file_(file) {}

  std::vector<std::vector<double>> hidden(const std::vector<TokenId>& tokens) {
    const int64_t e = file_.get_int("bert.embedding_length"), heads = file_.get_int("bert.attention.head_count");
    const int64_t layers = file_.get_int("bert.block_count");
    const double eps = file_.get_float_or("bert.attention.layer_norm_epsilon", 1e-12);
    const Matrix embeddings = matrix("token_embd.weight"), types = matrix("token_types.weight"),
                 positions = matrix("position_embd.weight");
    std::vector<std::vector<double>> x;
    for (size_t t = 0; t < tokens.size(); ++t) {
      std::vector<double> row(static_cast<size_t>(e));
      for (int64_t i = 0; i < e; ++i) row[i] = embeddings[tokens[t]][i] + types[0][i] + positions[t][i];
      x.push_back(norm(row, "token_embd_norm", eps));
    }
    const size_t d = static_cast<size_t>(e / heads);
    for (int64_t l = 0; l < layers; ++l) {
      const std::string p = "blk." + std::to_string(l) + ".";
      const auto q = linear(x, p + "attn_q"), k = linear(x, p + "attn_k"), v = linear(x, p + "attn_v");
      std::vector<std::vector<double>> attended(x.size(), std::vector<double>(static_cast<size_t>(e), 0.0));
      for (size_t h = 0; h < static_cast<size_t>(heads); ++h) {
        for (size_t t = 0; t < x.size(); ++t) {
          std::vector<double> weights(x.size());
          double total = 0;
          for (size_t s = 0; s < x.size(); ++s) {
            double dot = 0;
            for (size_t i = 0; i < d; ++i) dot += q[t][h * d + i] * k[s][h * d + i];
            total += weights[s] = std::exp(dot / std::sqrt(static_cast<double>(d)));
          }
          for (size_t s = 0; s < x.size(); ++s) {
            for (size_t i = 0; i < d; ++i) attended[t][h * d + i] += weights[s] / total * v[s][h * d + i];
          }
        }
      }
      const auto projected = linear(attended, p + "attn_output");
      for (size_t t = 0; t < x.size(); ++t) {
        for (int64_t i = 0; i < e; ++i) x[t][i] += projected[t][i];
        x[t] = norm(x[t], p + "attn_output_norm", eps);
      }
      auto up = linear(x, p + "ffn_up");
      for (auto& row : up) {
        for (double& value : row) value = 0.5 * value * (1 + std::tanh(std::sqrt(2 / M_PI) * (value + 0.044715 * value * value * value)));
      }
      const auto down = linear(up, p + "ffn_down");
      for (size_t t = 0; t < x.size(); ++t) {
        for (int64_t i = 0; i < e; ++i) x[t][i] += down[t][i];
        x[t] = norm(x[t], p + "layer_output_norm", eps);
      }
    }
    return x;
  }

 private:
  std::vector<double> values(const std::string& name) {
    const GgufTensor& t = file_.require_tensor(name);
    std::vector<float> out(static_cast<size_t>(t.element_count()));
    dequantize_row(t.type, t.data, out.data(), out.size());
    return {out.begin(), out.end()};
  }
  Matrix matrix(const std::string& name) {
    const GgufTensor& t = file_.require_tensor(name);
    const std::vector<double> all = values(name);
    Matrix rows(static_cast<size_t>(t.shape[1]));
    for (size_t r = 0; r < rows.size(); ++r) {
      rows[r].assign(all.begin() + static_cast<int64_t>(r * t.shape[0]), all.begin() + static_cast<int64_t>((r + 1) * t.shape[0]));
    }
    return rows;
  }
  std::vector<std::vector<double>> linear(const std::vector<std::vector<double>>& in, const std::string& name) {
    const Matrix w = matrix(name + ".weight");
    const std::vector<double> b = values(name + ".bias");
    std::vector<std::vector<double>> out;
    for (const auto& row : in) {
      std::vector<double> y(w.size());
      for (size_t r = 0; r < w.size(); ++r) {
        y[r] = b[r];
        for (size_t c = 0; c < row.size(); ++c) y[r] += w[r][c] * row[c];
      }
      out.push_back(std::move(y));
    }
    return out;
  }
  std::vector<double> norm(const std::vector<double>& x, const std::string& name, double eps) {
    const std::vector<double> w = values(name + ".weight"), b = values(name + ".bias");
    double mean = 0, variance = 0;
    for (const double v : x) mean += v;
    mean /= static_cast<double>(x.size());
    for (const double v : x) variance += (v - mean) * (v - mean);
    variance /= static_cast<double>(x.size());
    std::vector<double> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) out[i] = (x[i] - mean) / std::sqrt(variance + eps) * w[i] + b[i];
    return out;
  }
  const GgufFile& file_;
};

class BertEncoderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = test::write_random_bert(test::scratch_dir("bert") / "bert.gguf", TensorType::F32, 32, 2, 4, 64);
  }
  static inline std::filesystem::path path_;
};

TEST_F(BertEncoderTest, HiddenStatesAndPooledVectorEqualANaiveImplementation) {
  const auto encoder = EncoderModel::load(path_, 2);
  const auto tokenizer = Tokenizer::from_gguf(encoder->file());
  const std::vector<TokenId> tokens = tokenizer->encode("The clinic opens at 9, not at 10.", true, false);
  ASSERT_EQ(tokens.front(), 101);  // [CLS] ... [SEP], as the vocabulary asks
  ASSERT_EQ(tokens.back(), 102);
  const auto expected = NaiveBert(encoder->file()).hidden(tokens);
  const std::vector<float> hidden = encoder->hidden_states(tokens);
  const size_t e = static_cast<size_t>(encoder->config().embedding_size);
  ASSERT_EQ(hidden.size(), tokens.size() * e);
  double worst = 0;
  std::vector<double> mean(e, 0.0);
  for (size_t t = 0; t < tokens.size(); ++t) {
    for (size_t i = 0; i < e; ++i) {
      worst = std::max(worst, std::abs(hidden[t * e + i] - expected[t][i]));
      mean[i] += expected[t][i];
    }
  }
  EXPECT_LT(worst, 1e-4);
  double length = 0;
  for (const double v : mean) length += v * v;
  const std::vector<float> vector = encoder->embed(tokens);
  for (size_t i = 0; i < e; ++i) EXPECT_NEAR(vector[i], mean[i] / std::sqrt(length), 1e-5);
}

TEST_F(BertEncoderTest, RefusesWhatItCannotRunAndSaysWhy) {
  const auto encoder = EncoderModel::load(path_, 1);
  EXPECT_THROW(encoder->embed(std::vector<TokenId>{}), Error);
  EXPECT_THROW(encoder->embed(std::vector<TokenId>(65, 1000)), Error);  // 64 positions
  EXPECT_THROW(encoder->embed(std::vector<TokenId>{101, 1 << 20}), Error);
  EXPECT_THROW(EncoderModel::load(test::shared_path("models/tiny-llama-spm.gguf")), UnsupportedError);
  try {
    Model::load(path_);
    FAIL() << "a BERT file loaded as a generative model";
  } catch (const UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("--embedding"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace frugal
