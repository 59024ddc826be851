// The engine against a deliberately naive double-precision transformer
// written from the architecture descriptions (no caching, no batching, no
// shared code with src/model), on random models of every supported shape.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "frugal/error.h"
#include "frugal/gguf.h"
#include "frugal/model.h"
#include "frugal/quant.h"
#include "support/model_builder.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using Matrix = std::vector<double>;  // row-major [rows][cols]

class NaiveTransformer {
 public:
  NaiveTransformer(const GgufFile& file, const test::RandomModelSpec& spec) : file_(file), spec_(spec) {
    head_size_ = spec.head_size ? spec.head_size : spec.embedding / spec.heads;
  }

  // Logits for every position of `tokens`, each computed from scratch.
  std::vector<std::vector<double>> logits(const std::vector<TokenId>& tokens) const {
    const size_t n = tokens.size(), e = static_cast<size_t>(spec_.embedding);
    std::vector<std::vector<double>> x(n);
    const Matrix embedding = load("token_embd.weight");
    for (size_t t = 0; t < n; ++t) {
      x[t].assign(embedding.begin() + static_cast<long>(tokens[t] * e),
                  embedding.begin() + static_cast<long>((tokens[t] + 1) * e));
    }
    for (int64_t layer = 0; layer < spec_.layers; ++layer) {
      const std::string p = "blk." + std::to_string(layer) + ".";
      std::vector<std::vector<double>> q(n), k(n), v(n);
      for (size_t t = 0; t < n; ++t) {
        const auto h = rms(x[t], load(p + "attn_norm.weight"));
        q[t] = project(load(p + "attn_q.weight"), h, p + "attn_q.bias");
        k[t] = project(load(p + "attn_k.weight"), h, p + "attn_k.bias");
        v[t] = project(load(p + "attn_v.weight"), h, p + "attn_v.bias");
        rotate_heads(q[t], spec_.heads, static_cast<double>(t), p + "attn_q_norm.weight");
        rotate_heads(k[t], spec_.kv_heads, static_cast<double>(t), p + "attn_k_norm.weight");
      }
      const size_t hs = static_cast<size_t>(head_size_);
      for (size_t t = 0; t < n; ++t) {
        std::vector<double> attended(static_cast<size_t>(spec_.heads) * hs, 0.0);
        for (int64_t head = 0; head < spec_.heads; ++head) {
          const size_t kvh = static_cast<size_t>(head / (spec_.heads / spec_.kv_heads));
          std::vector<double> weights(t + 1);
          double max = -1e300;
          for (size_t j = 0; j <= t; ++j) {
            double dot = 0;
            for (size_t d = 0; d < hs; ++d) dot += q[t][static_cast<size_t>(head) * hs + d] * k[j][kvh * hs + d];
            weights[j] = dot / std::sqrt(static_cast<double>(hs));
            max = std::max(max, weights[j]);
          }
          double sum = 0;
          for (auto& w : weights) sum += (w = std::exp(w - max));
          for (size_t j = 0; j <= t; ++j) {
            for (size_t d = 0; d < hs; ++d) {
              attended[static_cast<size_t>(head) * hs + d] += weights[j] / sum * v[j][kvh * hs + d];
            }
          }
        }
        const auto out = project(load(p + "attn_output.weight"), attended, "");
        for (size_t i = 0; i < e; ++i) x[t][i] += out[i];
        const auto h = rms(x[t], load(p + "ffn_norm.weight"));
        auto gate = project(load(p + "ffn_gate.weight"), h, "");
        const auto up = project(load(p + "ffn_up.weight"), h, "");
        for (size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
        const auto down = project(load(p + "ffn_down.weight"), gate, "");
        for (size_t i = 0; i < e; ++i) x[t][i] += down[i];
      }
    }
    const Matrix output = load(spec_.tied_embeddings ? "token_embd.weight" : "output.weight");
    std::vector<std::vector<double>> result;
    for (size_t t = 0; t < n; ++t) result.push_back(project(output, rms(x[t], load("output_norm.weight")), ""));
    return result;
  }

 private:
  Matrix load(const std::string& name) const {
    const GgufTensor& t = file_.require_tensor(name);
    std::vector<float> values(static_cast<size_t>(t.element_count()));
    dequantize_row(t.type, t.data, values.data(), values.size());
    return Matrix(values.begin(), values.end());
  }

  std::vector<double> project(const Matrix& w, const std::vector<double>& x, const std::string& bias) const {
    const size_t rows = w.size() / x.size();
    std::vector<double> y(rows, 0.0);
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c = 0; c < x.size(); ++c) y[r] += w[r * x.size() + c] * x[c];
    }
    if (!bias.empty() && file_.find_tensor(bias)) {
      const Matrix b = load(bias);
      for (size_t r = 0; r < rows; ++r) y[r] += b[r];
    }
    return y;
  }

  static std::vector<double> rms(const std::vector<double>& x, const Matrix& weight) {
    double mean = 0;
    for (double v : x) mean += v * v;
    mean /= static_cast<double>(x.size());
    std::vector<double> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] / std::sqrt(mean + 1e-6) * weight[i];
    return out;
  }

  // Angle of rotated pair `i` at `position`, with the file's frequency scaling.
  double angle(double position, size_t i) const {
    const double d = static_cast<double>(head_size_);
    const double extrapolated = position * std::pow(static_cast<double>(spec_.rope_base), -2.0 * i / d);
    if (spec_.rope_scaling == "linear") return extrapolated / spec_.rope_scaling_factor;
    if (!spec_.rope_frequency_factors.empty()) return extrapolated / spec_.rope_frequency_factors[i];
    if (spec_.rope_scaling == "llama3") {
      // Llama 3.1: wavelengths longer than original_context / low_freq_factor
      // (1) are stretched by the factor, shorter than original_context /
      // high_freq_factor (4) kept, and the band between blended.
      const double wavelength = 2 * std::numbers::pi / std::pow(static_cast<double>(spec_.rope_base), -2.0 * i / d);
      const double context = static_cast<double>(spec_.rope_original_context);
      if (wavelength < context / 4) return extrapolated;
      if (wavelength > context / 1) return extrapolated / spec_.rope_scaling_factor;
      const double smooth = (context / wavelength - 1) / (4 - 1);
      return extrapolated * ((1 - smooth) / spec_.rope_scaling_factor + smooth);
    }
    if (spec_.rope_scaling == "yarn") {
      // YaRN: interpolate low frequencies, keep high ones, ramp between the
      // dimensions that complete beta_slow=1 and beta_fast=32 turns.
      auto turns_dim = [&](double turns) {
        return d * std::log(spec_.rope_original_context / (turns * 2 * std::numbers::pi)) /
               (2 * std::log(static_cast<double>(spec_.rope_base)));
      };
      const double low = std::max(0.0, std::floor(turns_dim(32))), high = std::min(d - 1, std::ceil(turns_dim(1)));
      const double ramp = 1 - std::clamp((static_cast<double>(i) - low) / std::max(0.001, high - low), 0.0, 1.0);
      const double interpolated = extrapolated / spec_.rope_scaling_factor;
      return interpolated * (1 - ramp) + extrapolated * ramp;
    }
    return extrapolated;
  }

  void rotate_heads(std::vector<double>& v, int64_t heads, double position, const std::string& norm) const {
    const size_t hs = static_cast<size_t>(head_size_);
    const bool neox = spec_.architecture != "llama";
    const double magnitude = spec_.rope_scaling == "yarn" ? 1 + 0.1 * std::log(spec_.rope_scaling_factor) : 1.0;
    for (int64_t h = 0; h < heads; ++h) {
      double* head = &v[static_cast<size_t>(h) * hs];
      if (file_.find_tensor(norm)) {
        const auto normed = rms(std::vector<double>(head, head + hs), load(norm));
        std::copy(normed.begin(), normed.end(), head);
      }
      for (size_t i = 0; i < hs / 2; ++i) {
        const size_t a = neox ? i : 2 * i, b = neox ? i + hs / 2 : 2 * i + 1;
        const double c = std::cos(angle(position, i)) * magnitude, s = std::sin(angle(position, i)) * magnitude;
        const double x0 = head[a], x1 = head[b];
        head[a] = x0 * c - x1 * s;
        head[b] = x0 * s + x1 * c;
      }
    }
  }

  const GgufFile& file_;
  test::RandomModelSpec spec_;
  int64_t head_size_;
};

const std::vector<TokenId> kTokens = {3, 17, 42, 8, 95, 0, 61, 61, 23, 7, 50, 12};

double max_difference(const std::vector<float>& ours, const std::vector<std::vector<double>>& reference) {
  double worst = 0;
  const size_t vocab = reference[0].size();
  for (size_t t = 0; t < reference.size(); ++t) {
    for (size_t i = 0; i < vocab; ++i) worst = std::max(worst, std::abs(ours[t * vocab + i] - reference[t][i]));
  }
  return worst;
}

class NaiveComparison : public ::testing::TestWithParam<test::RandomModelSpec> {};

TEST_P(NaiveComparison, AllPositionsMatchNaiveTransformer) {
  const auto dir = test::scratch_dir("naive");
  const auto path = test::write_random_model(GetParam(), dir / "model.gguf");
  auto model = Model::load(path, {.threads = 2});
  KvCache cache(model->config(), 64);
  const auto ours = model->forward(kTokens, cache, true);
  const GgufFile file = GgufFile::open(path);
  const auto reference = NaiveTransformer(file, GetParam()).logits(kTokens);
  // F16 weights are multiplied with F16-rounded activations (as the reference
  // engine does), which the double-precision model does not do.
  EXPECT_LT(max_difference(ours, reference), GetParam().matrix_type == TensorType::F32 ? 2e-3 : 0.05);
  std::filesystem::remove_all(dir);
}

test::RandomModelSpec spec(std::string arch, auto&&... tweaks) {
  test::RandomModelSpec s;
  s.architecture = std::move(arch);
  (tweaks(s), ...);
  return s;
}

INSTANTIATE_TEST_SUITE_P(
    Architectures, NaiveComparison,
    ::testing::Values(
        spec("llama"),
        spec("llama", [](auto& s) { s.kv_heads = 4; s.tied_embeddings = false; }),
        spec("llama", [](auto& s) { s.kv_heads = 1; s.rope_scaling = "linear"; s.rope_scaling_factor = 4; }),
        spec("qwen2", [](auto& s) { s.qkv_bias = true; s.rope_base = 1e6f; }),
        spec("qwen2", [](auto& s) { s.qkv_bias = true; s.rope_scaling = "yarn"; s.rope_scaling_factor = 4; s.rope_original_context = 32; }),
        spec("qwen3", [](auto& s) { s.qk_norm = true; s.head_size = 32; }),
        spec("llama", [](auto& s) { s.rope_scaling = "llama3"; s.rope_scaling_factor = 8; s.rope_original_context = 64; }),
        spec("llama", [](auto& s) {
          for (int i = 0; i < 8; ++i) s.rope_frequency_factors.push_back(1.0f + 0.5f * static_cast<float>(i));
        }),
        spec("llama", [](auto& s) { s.matrix_type = TensorType::F16; })));

TEST(ModelConsistency, LongBatchesAcrossAttentionBlocksMatchNaive) {
  // 75 tokens span three query blocks of the attention kernel; a second
  // batch on top of a filled cache checks the offsets.
  const auto dir = test::scratch_dir("long");
  test::RandomModelSpec s;
  s.architecture = "qwen2";
  s.qkv_bias = true;
  const auto path = test::write_random_model(s, dir / "model.gguf");
  auto model = Model::load(path, {.threads = 2});
  std::vector<TokenId> tokens;
  for (int i = 0; i < 75; ++i) tokens.push_back(static_cast<TokenId>((i * 37 + 11) % s.vocab));
  KvCache cache(model->config(), 128);
  const auto first = model->forward(std::span(tokens).first(40), cache, true);
  const auto second = model->forward(std::span(tokens).subspan(40), cache, true);
  std::vector<float> ours(first);
  ours.insert(ours.end(), second.begin(), second.end());
  const GgufFile file = GgufFile::open(path);
  EXPECT_LT(max_difference(ours, NaiveTransformer(file, s).logits(tokens)), 2e-3);
  std::filesystem::remove_all(dir);
}

TEST(ModelConsistency, IncrementalDecodingEqualsBatchedPrefill) {
  const auto dir = test::scratch_dir("incremental");
  test::RandomModelSpec s;
  s.architecture = "qwen2";
  s.qkv_bias = true;
  s.matrix_type = TensorType::Q8_0;
  auto model = Model::load(test::write_random_model(s, dir / "model.gguf"), {.threads = 2});
  KvCache batched(model->config(), 64), stepwise(model->config(), 64);
  const auto all = model->forward(kTokens, batched, true);
  const size_t vocab = static_cast<size_t>(model->config().vocab_size);
  for (size_t t = 0; t < kTokens.size(); ++t) {
    const auto one = model->forward(std::span(kTokens).subspan(t, 1), stepwise, false);
    for (size_t i = 0; i < vocab; ++i) ASSERT_NEAR(one[i], all[t * vocab + i], 1e-4) << "position " << t;
  }
  // Truncating and re-running a suffix reproduces the same logits.
  stepwise.truncate(5);
  const auto again = model->forward(std::span(kTokens).subspan(5), stepwise, true);
  for (size_t i = 0; i < again.size(); ++i) ASSERT_NEAR(again[i], all[5 * vocab + i], 1e-4);
  std::filesystem::remove_all(dir);
}

TEST(ModelConsistency, HalfPrecisionCacheStaysClose) {
  const auto dir = test::scratch_dir("f16cache");
  auto model = Model::load(test::write_random_model({}, dir / "model.gguf"), {.threads = 1});
  KvCache full(model->config(), 64), half(model->config(), 64, KvPrecision::F16);
  const auto a = model->forward(kTokens, full, true);
  const auto b = model->forward(kTokens, half, true);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max<double>(worst, std::abs(a[i] - b[i]));
  EXPECT_LT(worst, 0.05);  // logits here span about +-10
  EXPECT_EQ(half.bytes() * 2, full.bytes());
  std::filesystem::remove_all(dir);
}

TEST(ModelErrors, ContextOverflowAndBadTokensAreClear) {
  const auto dir = test::scratch_dir("errors");
  auto model = Model::load(test::write_random_model({}, dir / "model.gguf"), {.threads = 1});
  KvCache small(model->config(), 4);
  EXPECT_THROW(model->forward(kTokens, small, false), Error);
  KvCache cache(model->config(), 64);
  const TokenId bad[1] = {100000};
  EXPECT_THROW(model->forward(bad, cache, false), Error);
  std::filesystem::remove_all(dir);
}

TEST(ModelErrors, UnsupportedArchitectureAndMissingTensors) {
  const auto dir = test::scratch_dir("bad-models");
  GgufWriter writer;
  writer.set("general.architecture", GgufValue::string("mamba"));
  writer.write(dir / "mamba.gguf");
  try {
    Model::load(dir / "mamba.gguf");
    FAIL();
  } catch (const UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("'mamba' is not supported"), std::string::npos) << e.what();
  }
  // A llama file without its layer tensors.
  const auto full = GgufFile::open(test::write_random_model({}, dir / "full.gguf"));
  GgufWriter partial;
  for (const auto& [key, value] : full.metadata()) partial.set(key, value);
  for (const auto& t : full.tensors()) {
    if (t.name == "blk.1.ffn_up.weight") continue;
    partial.add_tensor(t.name, t.type, std::vector<int64_t>(t.shape.begin(), t.shape.begin() + t.n_dims),
                       {t.data, t.size_bytes});
  }
  partial.write(dir / "partial.gguf");
  try {
    Model::load(dir / "partial.gguf");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'blk.1.ffn_up.weight' is missing"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace frugal
