// The LoRA trainer's passes against independent references: its logits
// against the inference engine's forward pass (with the adapter it writes
// loaded by the engine), its gradients against finite differences of its
// loss, AdamW against the update written out in double precision.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "frugal/error.h"
#include "frugal/model.h"
#include "support/model_builder.h"
#include "support/test_paths.h"
#include "train/optimizer.h"
#include "train/training_pass.h"

namespace frugal {
namespace {

struct Architecture {
  const char* name;
  bool bias, qk_norm;
};
const Architecture kArchitectures[] = {{"llama", false, false}, {"qwen2", true, false}, {"qwen3", false, true}};

std::unique_ptr<Model> random_model(const Architecture& a, const std::filesystem::path& dir) {
  test::RandomModelSpec spec;
  spec.architecture = a.name;
  spec.qkv_bias = a.bias;
  spec.qk_norm = a.qk_norm;
  spec.heads = 4;
  spec.kv_heads = 2;  // grouped queries
  spec.seed = 5;
  ModelOptions options;
  options.threads = 2;
  return Model::load(test::write_random_model(spec, dir / (std::string(a.name) + ".gguf")), options);
}

// Every B drawn at random, so that the adapter changes the output and the
// gradients reach A.
void randomize(LoraParameters& lora, uint32_t seed, float spread = 0.1f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, spread);
  for (TrainableMatrix& m : lora.matrices()) {
    for (float& x : m.b) x = normal(rng);
  }
}

std::vector<TokenId> random_tokens(size_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<TokenId> pick(0, static_cast<TokenId>(vocab - 1));
  std::vector<TokenId> tokens(n);
  for (TokenId& t : tokens) t = pick(rng);
  return tokens;
}

double largest_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(double(a[i]) - b[i]));
  return worst;
}

TEST(LoraTrainingPass, LogitsEqualTheEngineWithAndWithoutTheAdapter) {
  const auto dir = test::scratch_dir("train_forward");
  for (const Architecture& a : kArchitectures) {
    SCOPED_TRACE(a.name);
    auto model = random_model(a, dir);
    LoraParameters lora(model->config(), parse_lora_targets("all"), 4, 8.0f, 3);
    randomize(lora, 11, 0.3f);
    LoraTrainingPass pass(*model, lora);
    const auto tokens = random_tokens(24, model->config().vocab_size, 2);
    KvCache cache(model->config(), 64);
    const std::vector<float> engine = model->forward(tokens, cache, true);
    const std::vector<float> base = pass.logits(tokens, {}, false);
    ASSERT_EQ(engine.size(), base.size());
    EXPECT_LT(largest_difference(engine, base), 1e-4);

    // The adapter as written, loaded by the engine: the same function.
    lora.write_adapter(dir / "adapter.gguf", model->config(), "test");
    ModelOptions options;
    options.threads = 2;
    options.loras = {{dir / "adapter.gguf", 1.0f}};
    auto adapted = Model::load(model->file().source_name(), options);
    KvCache adapted_cache(adapted->config(), 64);
    const std::vector<float> engine_adapted = adapted->forward(tokens, adapted_cache, true);
    const std::vector<float> tuned = pass.logits(tokens, {}, true);
    EXPECT_GT(largest_difference(engine_adapted, engine), 1e-2);  // the adapter does something
    EXPECT_LT(largest_difference(engine_adapted, tuned), 1e-4);
  }
}

// The loss the trainer minimises for a sequence, as one number.
double total_loss(LoraTrainingPass& pass, const TrainingSequence& sequence, float target_weight, float preserve_weight) {
  const SequenceLoss loss = pass.run(sequence, target_weight, preserve_weight, false);
  return target_weight * loss.cross_entropy + preserve_weight * loss.divergence;
}

TEST(LoraTrainingPass, GradientsEqualFiniteDifferences) {
  const auto dir = test::scratch_dir("train_gradients");
  for (const Architecture& a : kArchitectures) {
   for (const bool recompute : {false, true}) {
    SCOPED_TRACE(std::string(a.name) + (recompute ? ", activations recomputed, weights read by blocks" : ", activations and weight copies kept"));
    auto model = random_model(a, dir);
    LoraParameters lora(model->config(), parse_lora_targets("all"), 3, 6.0f, 4);
    randomize(lora, 12);
    LoraTrainingPass pass(*model, lora);
    if (recompute) pass.set_memory_limits(0, 0);
    TrainingSequence sequence;
    sequence.tokens = random_tokens(20, model->config().vocab_size, 3);
    for (int32_t t = 8; t < 20; ++t) sequence.targets.push_back(t);
    // A preserved distribution on two rows, one of them also a target row.
    for (const int32_t row : {4, 10}) {
      PreservedDistribution d;
      d.row = row;
      d.ids = {3, 17, 40};
      d.probabilities = {0.5f, 0.2f, 0.1f};
      d.tail = 0.2f;
      sequence.preserved.push_back(d);
    }
    const float target_weight = 1.0f / 12, preserve_weight = 0.7f;
    lora.zero_gradients();
    pass.run(sequence, target_weight, preserve_weight, true);

    std::mt19937 rng(9);
    size_t checked = 0;
    double largest = 0;  // the comparison means something only if gradients are not all tiny
    for (TrainableMatrix& m : lora.matrices()) {
      for (const bool is_a : {true, false}) {
        std::vector<float>& values = is_a ? m.a : m.b;
        const std::vector<float>& gradients = is_a ? m.grad_a : m.grad_b;
        for (int sample = 0; sample < 2; ++sample) {
          const size_t i = std::uniform_int_distribution<size_t>(0, values.size() - 1)(rng);
          const float kept = values[i], step = 1e-2f;
          values[i] = kept + step;
          const double above = total_loss(pass, sequence, target_weight, preserve_weight);
          values[i] = kept - step;
          const double below = total_loss(pass, sequence, target_weight, preserve_weight);
          values[i] = kept;
          const double numeric = (above - below) / (2.0 * step);
          largest = std::max(largest, std::abs(numeric));
          EXPECT_NEAR(gradients[i], numeric, 2e-4 + 2e-2 * std::abs(numeric))
              << m.weight_name << (is_a ? " A[" : " B[") << i << "]";
          ++checked;
        }
      }
    }
    EXPECT_EQ(checked, lora.matrices().size() * 4);
    EXPECT_GT(largest, 1e-2);
   }
  }
}

// A base sure of its tokens (every token kept, a rounding-sized tail): the
// KL gradient stays bounded (it once divided by the rest mass computed as
// 1 - sum, which cancels to nothing).
TEST(LoraTrainingPass, PreserveGradientIsBoundedWhenTheBaseIsSure) {
  const auto dir = test::scratch_dir("train_sure");
  auto model = random_model(kArchitectures[0], dir);
  LoraParameters lora(model->config(), parse_lora_targets("q,v"), 2, 4.0f, 1);
  randomize(lora, 3);
  LoraTrainingPass pass(*model, lora);
  TrainingSequence sequence{random_tokens(8, model->config().vocab_size, 4), {}, {}};
  PreservedDistribution d;
  d.row = 5;
  for (TokenId id = 0; id < model->config().vocab_size; ++id) {
    d.ids.push_back(id);
    d.probabilities.push_back(id == 7 ? 1.0f : 0.0f);
  }
  d.tail = 1e-9f;
  sequence.preserved.push_back(d);
  lora.zero_gradients();
  const SequenceLoss loss = pass.run(sequence, 0, 1.0f, true);
  EXPECT_TRUE(std::isfinite(loss.divergence));
  const double norm = lora.gradient_norm();
  EXPECT_TRUE(std::isfinite(norm));
  EXPECT_LT(norm, 100.0);
  sequence.preserved[0].ids[0] = static_cast<TokenId>(model->config().vocab_size);
  EXPECT_THROW(pass.run(sequence, 0, 1.0f, true), Error);
}

TEST(LoraTrainingPass, RefusesTargetsOutsideTheSequence) {
  const auto dir = test::scratch_dir("train_refuse");
  auto model = random_model(kArchitectures[0], dir);
  LoraParameters lora(model->config(), parse_lora_targets("q,v"), 2, 4.0f, 1);
  LoraTrainingPass pass(*model, lora);
  TrainingSequence sequence{{1, 2, 3}, {0}, {}};
  EXPECT_THROW(pass.run(sequence, 1, 0, true), Error);
  sequence.targets = {3};
  EXPECT_THROW(pass.run(sequence, 1, 0, true), Error);
  EXPECT_THROW(parse_lora_targets("q,x"), Error);
  EXPECT_EQ(parse_lora_targets("v,q,q").size(), 2u);
}

TEST(AdamW, FollowsTheUpdateWrittenOut) {
  ModelConfig config;
  config.layer_count = 1;
  config.embedding_size = 4;
  config.head_count = 2;
  config.kv_head_count = 2;
  config.head_size = 2;
  config.feed_forward_size = 4;
  LoraParameters lora(config, {LoraTarget::Query}, 1, 1.0f, 1);
  TrainableMatrix& m = lora.matrices().front();
  const std::vector<float> start = m.a;
  const AdamWSettings settings{0.9f, 0.999f, 1e-8f, 0.1f};
  std::vector<double> value(start.begin(), start.end()), first(start.size(), 0), second(start.size(), 0);
  for (size_t step = 1; step <= 3; ++step) {
    for (size_t i = 0; i < m.grad_a.size(); ++i) m.grad_a[i] = 0.3f * static_cast<float>(i) - 0.5f + 0.1f * step;
    adamw_step(lora, 0.01f, step, settings);
    for (size_t i = 0; i < value.size(); ++i) {
      const double g = m.grad_a[i];
      value[i] -= 0.01 * 0.1 * value[i];  // decoupled decay (Loshchilov & Hutter)
      first[i] = 0.9 * first[i] + 0.1 * g;
      second[i] = 0.999 * second[i] + 0.001 * g * g;
      const double m_hat = first[i] / (1 - std::pow(0.9, step)), v_hat = second[i] / (1 - std::pow(0.999, step));
      value[i] -= 0.01 * m_hat / (std::sqrt(v_hat) + 1e-8);
    }
  }
  for (size_t i = 0; i < value.size(); ++i) EXPECT_NEAR(m.a[i], value[i], 1e-6);
}

TEST(Schedule, WarmsUpThenDecaysToZero) {
  EXPECT_FLOAT_EQ(scheduled_rate(1.0f, 1, 4, 100), 0.25f);
  EXPECT_FLOAT_EQ(scheduled_rate(1.0f, 4, 4, 100), 1.0f);
  EXPECT_FLOAT_EQ(scheduled_rate(1.0f, 5, 4, 100), 1.0f);
  EXPECT_NEAR(scheduled_rate(1.0f, 53, 4, 100), 0.5f, 1e-6);
  EXPECT_GT(scheduled_rate(1.0f, 100, 4, 100), 0.0f);
  EXPECT_LT(scheduled_rate(1.0f, 100, 4, 100), 1e-3f);
  EXPECT_FLOAT_EQ(scheduled_rate(2.0f, 1, 0, 1), 2.0f);
}

}  // namespace
}  // namespace frugal
