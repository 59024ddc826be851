// Runs the LoRA trainer's forward and backward pass on fixed sequences and
// writes everything a reference implementation needs to recompute the loss
// and the LoRA gradients on its own (check_lora_gradients.py does, with
// PyTorch autograd).
//
//   lora_gradient_dump MODEL.gguf OUT_DIR
//
// OUT_DIR/dump.json: the configuration, each case's tokens, targets,
// preserved rows, weights and losses, and for each matrix its name, shape
// and offsets (in floats) into OUT_DIR/dump.bin, which holds little-endian
// float32 values: A and B (the values the pass ran with), then each case's
// grad_a and grad_b.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frugal/model.h"
#include "train/lora_parameters.h"
#include "train/training_pass.h"

namespace {

using frugal::TokenId;

// Appends `values` to the float file and returns their offset (in floats).
class FloatFile {
 public:
  explicit FloatFile(const std::filesystem::path& path) : out_(path, std::ios::binary) {
    if (!out_) throw std::runtime_error("cannot write " + path.string());
  }
  size_t append(const std::vector<float>& values) {
    const size_t offset = written_;
    // The float layout of this (x86-64, AArch64) target is little-endian IEEE.
    out_.write(reinterpret_cast<const char*>(values.data()),
               static_cast<std::streamsize>(values.size() * sizeof(float)));
    written_ += values.size();
    return offset;
  }
  void close() {
    out_.close();
    if (!out_) throw std::runtime_error("writing the float file failed");
  }

 private:
  std::ofstream out_;
  size_t written_ = 0;
};

// `length` in-vocabulary tokens starting with BOS (id 1); ids 0-2 (unknown,
// BOS, EOS) are not drawn again.
std::vector<TokenId> random_tokens(std::mt19937_64& rng, size_t length, int64_t vocab) {
  std::uniform_int_distribution<TokenId> id(3, static_cast<TokenId>(vocab - 1));
  std::vector<TokenId> tokens{1};
  while (tokens.size() < length) tokens.push_back(id(rng));
  return tokens;
}

// The last `count` indices of a sequence of `length` tokens.
std::vector<int32_t> last_indices(size_t length, size_t count) {
  std::vector<int32_t> targets;
  for (size_t t = length - count; t < length; ++t) targets.push_back(static_cast<int32_t>(t));
  return targets;
}

// A made-up base distribution for row `row` over `ids` (distinct): random
// probabilities holding `mass` of the total, the rest as the tail.
frugal::PreservedDistribution random_distribution(std::mt19937_64& rng, int32_t row, std::vector<TokenId> ids,
                                                  float mass) {
  frugal::PreservedDistribution d;
  d.row = row;
  d.ids = std::move(ids);
  std::uniform_real_distribution<float> weight(0.05f, 1.0f);
  std::vector<float> weights;
  float weight_sum = 0;
  for (size_t k = 0; k < d.ids.size(); ++k) {
    weights.push_back(weight(rng));
    weight_sum += weights.back();
  }
  float kept_sum = 0;
  for (const float w : weights) {
    d.probabilities.push_back(mass * w / weight_sum);
    kept_sum += d.probabilities.back();
  }
  // As preserved_sequence() does: the tail is what the kept ids leave.
  d.tail = std::max(0.0f, 1.0f - kept_sum);
  return d;
}

// The `count` most likely next tokens of the base model at each of `rows`.
// Kept ids the tuned model gives real mass make the tail term (the mass
// outside them) matter in the gradient; random ids would leave it ~1.
std::vector<std::vector<TokenId>> base_top_ids(frugal::LoraTrainingPass& pass, const std::vector<TokenId>& tokens,
                                               const std::vector<size_t>& rows, size_t count) {
  const std::vector<float> logits = pass.logits(tokens, rows, false);
  const size_t vocab = logits.size() / rows.size();
  std::vector<std::vector<TokenId>> top;
  for (size_t i = 0; i < rows.size(); ++i) {
    const float* z = &logits[i * vocab];
    std::vector<TokenId> order(vocab);
    for (size_t j = 0; j < vocab; ++j) order[j] = static_cast<TokenId>(j);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(count), order.end(),
                      [&](TokenId a, TokenId b) { return z[a] > z[b]; });
    order.resize(count);
    top.push_back(std::move(order));
  }
  return top;
}

struct Case {
  std::string name;
  frugal::TrainingSequence sequence;
  float target_weight = 0, preserve_weight = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: lora_gradient_dump MODEL.gguf OUT_DIR\n";
    return 2;
  }
  try {
    const std::filesystem::path model_path = argv[1], out_dir = argv[2];
    std::filesystem::create_directories(out_dir);
    const auto model = frugal::Model::load(model_path);
    const frugal::ModelConfig& config = model->config();

    constexpr int64_t kRank = 4;
    constexpr float kAlpha = 8.0f;
    frugal::LoraParameters lora(config, frugal::parse_lora_targets("all"), kRank, kAlpha, 7);
    // B starts at zero, which would leave every A gradient zero: small
    // random values make both gradients (and the adapter's effect) non-trivial.
    std::mt19937_64 rng(20240607);
    std::normal_distribution<float> small(0.0f, 0.02f);
    for (frugal::TrainableMatrix& m : lora.matrices()) {
      for (float& b : m.b) b = small(rng);
    }

    frugal::LoraTrainingPass pass(*model, lora);
    std::vector<Case> cases;
    {
      Case c;
      c.name = "cross_entropy";
      c.sequence.tokens = random_tokens(rng, 40, config.vocab_size);
      c.sequence.targets = last_indices(40, 15);
      c.target_weight = 1.0f / static_cast<float>(c.sequence.targets.size());
      cases.push_back(std::move(c));
    }
    // Rows 20-25 of a second sequence carry base distributions over the
    // base model's top 16 ids there; row 22's probabilities sum to 1 (no
    // tail term).
    const std::vector<TokenId> preserve_tokens = random_tokens(rng, 36, config.vocab_size);
    const std::vector<size_t> preserve_rows = {20, 21, 22, 23, 24, 25};
    const std::vector<std::vector<TokenId>> top = base_top_ids(pass, preserve_tokens, preserve_rows, 16);
    std::vector<frugal::PreservedDistribution> preserved;
    for (size_t i = 0; i < preserve_rows.size(); ++i) {
      const float mass = preserve_rows[i] == 22 ? 1.0f : 0.4f + 0.1f * static_cast<float>(i);
      preserved.push_back(random_distribution(rng, static_cast<int32_t>(preserve_rows[i]), top[i], mass));
    }
    {
      // The preserve term alone, as finetune() runs a preserve record.
      Case c;
      c.name = "preserve";
      c.sequence.tokens = preserve_tokens;
      c.sequence.preserved = preserved;
      c.preserve_weight = 0.5f / static_cast<float>(preserved.size());
      cases.push_back(std::move(c));
    }
    {
      // Both terms: rows 23-25 also predict targets (24-26), so both
      // gradients land on the same logits there.
      Case c;
      c.name = "cross_entropy_and_preserve";
      c.sequence.tokens = preserve_tokens;
      c.sequence.targets = {24, 25, 26, 30, 31, 32, 33, 34, 35};
      c.sequence.preserved = preserved;
      c.target_weight = 1.0f / static_cast<float>(c.sequence.targets.size());
      c.preserve_weight = 0.5f / static_cast<float>(preserved.size());
      cases.push_back(std::move(c));
    }

    FloatFile floats(out_dir / "dump.bin");
    nlohmann::json dump;
    dump["model"] = std::filesystem::absolute(model_path).string();
    dump["rank"] = lora.rank();
    dump["alpha"] = lora.alpha();
    dump["factor"] = lora.factor();
    nlohmann::json matrices = nlohmann::json::array();
    for (const frugal::TrainableMatrix& m : lora.matrices()) {
      matrices.push_back({{"name", m.weight_name},
                          {"rows", m.rows},
                          {"cols", m.cols},
                          {"rank", m.rank},
                          {"a", floats.append(m.a)},
                          {"b", floats.append(m.b)}});
    }

    nlohmann::json case_list = nlohmann::json::array();
    for (const Case& c : cases) {
      lora.zero_gradients();
      const frugal::SequenceLoss loss = pass.run(c.sequence, c.target_weight, c.preserve_weight, true);
      nlohmann::json preserved = nlohmann::json::array();
      for (const frugal::PreservedDistribution& d : c.sequence.preserved) {
        preserved.push_back({{"row", d.row}, {"ids", d.ids}, {"probabilities", d.probabilities}, {"tail", d.tail}});
      }
      nlohmann::json gradients = nlohmann::json::array();
      for (const frugal::TrainableMatrix& m : lora.matrices()) {
        gradients.push_back({{"grad_a", floats.append(m.grad_a)}, {"grad_b", floats.append(m.grad_b)}});
      }
      nlohmann::json entry = {{"name", c.name},
                                {"tokens", c.sequence.tokens},
                                {"targets", c.sequence.targets},
                                {"preserved", preserved},
                                {"target_weight", c.target_weight},
                                {"preserve_weight", c.preserve_weight},
                                {"cross_entropy_sum", loss.cross_entropy},
                                {"divergence_sum", loss.divergence},
                                {"gradients", gradients}};
      // The mean the trainer reports (per target token), where there are targets.
      if (loss.targets > 0) entry["cross_entropy_mean"] = loss.cross_entropy / static_cast<double>(loss.targets);
      case_list.push_back(std::move(entry));
    }
    floats.close();
    dump["matrices"] = matrices;
    dump["cases"] = case_list;
    std::ofstream json_out(out_dir / "dump.json");
    json_out << dump.dump(1) << '\n';
    json_out.close();
    if (!json_out) throw std::runtime_error("writing dump.json failed");
    std::cout << "wrote " << (out_dir / "dump.json").string() << " and dump.bin: " << lora.matrices().size()
              << " matrices, " << cases.size() << " cases\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "lora_gradient_dump: " << e.what() << '\n';
    return 1;
  }
}
