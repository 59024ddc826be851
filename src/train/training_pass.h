// One sequence through a frozen model with trainable LoRA matrices: the
// loss, and its gradient with respect to every LoRA matrix. Every layer's
// activations are kept for the backward pass when they fit in
// kKeptActivationBytes; a longer sequence keeps only each layer's input, and
// the backward pass recomputes a layer's activations just before it needs
// them (gradient checkpointing: one more forward pass, memory for one
// layer's activations beyond tokens x embedding per layer).
#pragma once

#include <span>
#include <vector>

#include "frugal/model.h"
#include "train/backward_ops.h"
#include "train/lora_parameters.h"

namespace frugal {

// The base model's next-token distribution at one row, kept as its most
// likely tokens and the mass of all others (the --preserve term).
struct PreservedDistribution {
  int32_t row = 0;  // the position whose logits are compared
  std::vector<TokenId> ids;
  std::vector<float> probabilities;
  float tail = 0;  // 1 - sum(probabilities)
};

struct TrainingSequence {
  std::vector<TokenId> tokens;
  // Indices t >= 1 of the tokens trained on, each predicted by row t - 1.
  std::vector<int32_t> targets;
  std::vector<PreservedDistribution> preserved;
};

struct SequenceLoss {
  double cross_entropy = 0;  // summed over the targets, in nats
  size_t targets = 0;
  double divergence = 0;  // KL(base || tuned) summed over the preserved rows
  size_t preserved = 0;
};

class LoraTrainingPass {
 public:
  static constexpr size_t kKeptActivationBytes = size_t{256} << 20;
  // F32 transposed copies of the frozen weights kept for the backward pass
  // (the whole demo model: 37 MiB); larger models read theirs block by block.
  static constexpr size_t kTransposedWeightBytes = size_t{256} << 20;
  // Other limits (0, 0: recompute every layer and keep no weight copies;
  // tests take both ways).
  void set_memory_limits(size_t activation_bytes, size_t weight_bytes) {
    kept_activation_bytes_ = activation_bytes;
    transposed_ = TransposedWeights(weight_bytes);
  }

  LoraTrainingPass(const Model& model, LoraParameters& lora);

  // The loss of `sequence`. With `backward`, adds to the LoRA gradients the
  // gradient of target_weight * cross entropy + preserve_weight *
  // divergence (weights per token: 1 / the batch's target count, say).
  SequenceLoss run(const TrainingSequence& sequence, float target_weight, float preserve_weight, bool backward);

  // Logits of the rows `rows` [rows x vocab] (every row when empty),
  // through the adapter or the base model.
  std::vector<float> logits(std::span<const TokenId> tokens, std::span<const size_t> rows, bool with_adapter);

 private:
  struct LayerActivations;
  // x [n x embedding]: a layer's input, replaced by its output.
  void layer_forward(size_t layer, float* x, size_t n, bool with_adapter, LayerActivations& saved);
  // dx: the gradient of the layer's output, replaced by that of its input.
  void layer_backward(size_t layer, const float* input, size_t n, LayerActivations& saved, float* dx);
  // The final hidden states (before the output norm) of every row; each
  // layer's input is appended to `inputs` when given, and its activations
  // to `kept` when given.
  std::vector<float> hidden_states(std::span<const TokenId> tokens, bool with_adapter,
                                   std::vector<std::vector<float>>* inputs, std::vector<LayerActivations>* kept);
  void prepare_angles(size_t n);

  const Model& model_;
  LoraParameters& lora_;
  std::vector<float> cosines_, sines_;  // per position, rope pairs each
  size_t kept_activation_bytes_ = kKeptActivationBytes;
  TransposedWeights transposed_{kTransposedWeightBytes};
};

}  // namespace frugal
