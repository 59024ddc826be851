// Creating, initialising and writing the trainable LoRA matrices.
#include "train/lora_parameters.h"

#include <cmath>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/gguf.h"

namespace frugal {

namespace {

constexpr std::array<std::string_view, kLoraTargetCount> kTargetNames = {"q", "k", "v", "o", "gate", "up", "down"};
// GGUF tensor names of the adapted weights, by target.
constexpr std::array<std::string_view, kLoraTargetCount> kWeightParts = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

// (rows, cols) of the weight a target adapts.
std::pair<int64_t, int64_t> weight_shape(const ModelConfig& c, LoraTarget target) {
  const int64_t q_width = c.head_count * c.head_size, kv_width = c.kv_head_count * c.head_size;
  switch (target) {
    case LoraTarget::Query: return {q_width, c.embedding_size};
    case LoraTarget::Key:
    case LoraTarget::Value: return {kv_width, c.embedding_size};
    case LoraTarget::Output: return {c.embedding_size, q_width};
    case LoraTarget::Gate:
    case LoraTarget::Up: return {c.feed_forward_size, c.embedding_size};
    case LoraTarget::Down: return {c.embedding_size, c.feed_forward_size};
  }
  return {0, 0};
}

}  // namespace

std::string_view lora_target_name(LoraTarget target) { return kTargetNames[static_cast<size_t>(target)]; }

std::vector<LoraTarget> parse_lora_targets(std::string_view list) {
  std::vector<LoraTarget> targets;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    const std::string_view item = list.substr(start, comma - start);
    if (item == "all") {
      for (size_t i = 0; i < kLoraTargetCount; ++i) targets.push_back(static_cast<LoraTarget>(i));
    } else {
      size_t found = kLoraTargetCount;
      for (size_t i = 0; i < kLoraTargetCount; ++i) {
        if (item == kTargetNames[i]) found = i;
      }
      if (found == kLoraTargetCount) {
        throw Error(fmt::format("--targets: '{}' is not a projection; use a comma-separated list of q, k, v, o, "
                                "gate, up, down (or all)",
                                item));
      }
      targets.push_back(static_cast<LoraTarget>(found));
    }
    start = comma + 1;
  }
  std::sort(targets.begin(), targets.end());
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  return targets;
}

LoraParameters::LoraParameters(const ModelConfig& config, const std::vector<LoraTarget>& targets, int64_t rank,
                               float alpha, uint64_t seed)
    : rank_(rank), alpha_(alpha) {
  if (rank < 1) throw Error(fmt::format("--rank {}: the rank must be at least 1", rank));
  if (!(alpha > 0.0f)) throw Error(fmt::format("--alpha {}: alpha must be positive", alpha));
  if (targets.empty()) throw Error("--targets: name at least one projection to adapt");
  std::mt19937_64 rng(seed);
  index_.assign(static_cast<size_t>(config.layer_count), {});
  for (size_t layer = 0; layer < index_.size(); ++layer) {
    index_[layer].fill(-1);
    for (const LoraTarget target : targets) {
      const auto [rows, cols] = weight_shape(config, target);
      if (rank > std::min(rows, cols)) {
        throw Error(fmt::format("--rank {}: larger than the {} projection's smaller side ({})", rank,
                                lora_target_name(target), std::min(rows, cols)));
      }
      TrainableMatrix m;
      m.weight_name = fmt::format("blk.{}.{}.weight", layer, kWeightParts[static_cast<size_t>(target)]);
      m.rows = rows;
      m.cols = cols;
      m.rank = rank;
      m.a.resize(static_cast<size_t>(rank * cols));
      const float bound = 1.0f / std::sqrt(static_cast<float>(cols));
      std::uniform_real_distribution<float> uniform(-bound, bound);
      for (float& x : m.a) x = uniform(rng);
      m.b.assign(static_cast<size_t>(rows * rank), 0.0f);
      m.grad_a.assign(m.a.size(), 0.0f);
      m.grad_b.assign(m.b.size(), 0.0f);
      m.moment1_a.assign(m.a.size(), 0.0f);
      m.moment2_a.assign(m.a.size(), 0.0f);
      m.moment1_b.assign(m.b.size(), 0.0f);
      m.moment2_b.assign(m.b.size(), 0.0f);
      index_[layer][static_cast<size_t>(target)] = static_cast<int>(matrices_.size());
      matrices_.push_back(std::move(m));
    }
  }
}

TrainableMatrix* LoraParameters::find(size_t layer, LoraTarget target) {
  const int i = index_[layer][static_cast<size_t>(target)];
  return i < 0 ? nullptr : &matrices_[static_cast<size_t>(i)];
}

const TrainableMatrix* LoraParameters::find(size_t layer, LoraTarget target) const {
  const int i = index_[layer][static_cast<size_t>(target)];
  return i < 0 ? nullptr : &matrices_[static_cast<size_t>(i)];
}

size_t LoraParameters::parameter_count() const {
  size_t count = 0;
  for (const TrainableMatrix& m : matrices_) count += m.a.size() + m.b.size();
  return count;
}

void LoraParameters::zero_gradients() {
  for (TrainableMatrix& m : matrices_) {
    std::fill(m.grad_a.begin(), m.grad_a.end(), 0.0f);
    std::fill(m.grad_b.begin(), m.grad_b.end(), 0.0f);
  }
}

double LoraParameters::gradient_norm() const {
  double sum = 0;
  for (const TrainableMatrix& m : matrices_) {
    for (const float g : m.grad_a) sum += static_cast<double>(g) * g;
    for (const float g : m.grad_b) sum += static_cast<double>(g) * g;
  }
  return std::sqrt(sum);
}

void LoraParameters::scale_gradients(float factor) {
  for (TrainableMatrix& m : matrices_) {
    for (float& g : m.grad_a) g *= factor;
    for (float& g : m.grad_b) g *= factor;
  }
}

void LoraParameters::write_adapter(const std::filesystem::path& path, const ModelConfig& config,
                                   std::string_view name) const {
  GgufWriter writer;
  writer.set("general.architecture", GgufValue::string(config.architecture));
  writer.set("general.type", GgufValue::string("adapter"));
  writer.set("general.name", GgufValue::string(std::string(name)));
  writer.set("adapter.type", GgufValue::string("lora"));
  writer.set("adapter.lora.alpha", GgufValue::f32(alpha_));
  for (const TrainableMatrix& m : matrices_) {
    const auto bytes = [](const std::vector<float>& values) {
      return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(values.data()), values.size() * sizeof(float));
    };
    writer.add_tensor(m.weight_name + ".lora_a", TensorType::F32, {m.cols, m.rank}, bytes(m.a));
    writer.add_tensor(m.weight_name + ".lora_b", TensorType::F32, {m.rank, m.rows}, bytes(m.b));
  }
  writer.write(path);
}

}  // namespace frugal
