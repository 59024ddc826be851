// The trainable part of a LoRA fine-tune: for each adapted weight W
// [rows x cols], A [rank x cols] and B [rows x rank] with their gradients
// and AdamW moments. The adapted product is W x + factor * B (A x), factor =
// alpha / rank, llama.cpp's convention, so the adapter file applies as
// trained.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "frugal/model.h"

namespace frugal {

// The projections a fine-tune may adapt (--targets), in the order of a layer.
enum class LoraTarget { Query, Key, Value, Output, Gate, Up, Down };
inline constexpr size_t kLoraTargetCount = 7;

// "q", "k", "v", "o", "gate", "up", "down".
std::string_view lora_target_name(LoraTarget target);
// Parses a comma-separated list ("q,v", "all"); throws Error naming the
// unknown entry.
std::vector<LoraTarget> parse_lora_targets(std::string_view list);

struct TrainableMatrix {
  std::string weight_name;  // "blk.3.attn_q.weight"
  int64_t rows = 0, cols = 0, rank = 0;
  std::vector<float> a, b;            // A [rank x cols], B [rows x rank], row-major
  std::vector<float> grad_a, grad_b;  // same shapes, summed over the accumulated batch
  std::vector<float> moment1_a, moment2_a, moment1_b, moment2_b;
};

class LoraParameters {
 public:
  // A zero change (B = 0) with A drawn as PyTorch's PEFT does
  // (Kaiming-uniform, bound 1/sqrt(cols)), from `seed`.
  LoraParameters(const ModelConfig& config, const std::vector<LoraTarget>& targets, int64_t rank, float alpha,
                 uint64_t seed);

  float factor() const { return alpha_ / static_cast<float>(rank_); }
  float alpha() const { return alpha_; }
  int64_t rank() const { return rank_; }
  // The matrix adapting `target` in `layer`, or nullptr when not trained.
  TrainableMatrix* find(size_t layer, LoraTarget target);
  const TrainableMatrix* find(size_t layer, LoraTarget target) const;
  std::vector<TrainableMatrix>& matrices() { return matrices_; }
  const std::vector<TrainableMatrix>& matrices() const { return matrices_; }
  size_t parameter_count() const;

  void zero_gradients();
  // sqrt of the sum of squared gradients.
  double gradient_norm() const;
  void scale_gradients(float factor);

  // Writes llama.cpp's GGUF adapter layout (general.type "adapter",
  // adapter.type "lora", adapter.lora.alpha, NAME.lora_a [cols, rank] and
  // NAME.lora_b [rank, rows] in F32), atomically.
  void write_adapter(const std::filesystem::path& path, const ModelConfig& config, std::string_view name) const;

 private:
  int64_t rank_;
  float alpha_;
  std::vector<TrainableMatrix> matrices_;
  std::vector<std::array<int, kLoraTargetCount>> index_;  // per layer: matrix index or -1
};

}  // namespace frugal
