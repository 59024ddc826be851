// LoRA adapters applied unmerged: each adapted product gains
// scale * B (A x), computed by the same matrix kernels over F32 copies of
// the adapters' small matrices.
#include <fmt/format.h>

#include "frugal/error.h"
#include "model/model_impl.h"

namespace frugal {

void Model::Impl::load_loras(const std::vector<LoraSpec>& specs) {
  layer_lora.assign(layers.size(), {});
  output_lora.clear();
  adapters.clear();
  lora_info.clear();
  for (const LoraSpec& spec : specs) adapters.push_back(read_lora_adapter(spec, file));
  static constexpr std::pair<const char*, Projection> kParts[] = {
      {"attn_q", kQuery}, {"attn_k", kKey},   {"attn_v", kValue},    {"attn_output", kAttentionOutput},
      {"ffn_gate", kGate}, {"ffn_up", kUp}, {"ffn_down", kDown}};
  for (size_t index = 0; index < adapters.size(); ++index) {
    LoraAdapter& adapter = adapters[index];
    for (auto& [name, delta] : adapter.deltas) delta.adapter = index;
    lora_info.push_back(adapter.info);
    for (const auto& [name, delta] : adapter.deltas) {
      if (name == "output.weight") {
        output_lora.push_back(&delta);
        continue;
      }
      bool placed = false;
      for (size_t layer = 0; layer < layers.size() && !placed; ++layer) {
        for (const auto& [part, projection] : kParts) {
          if (name == fmt::format("blk.{}.{}.weight", layer, part)) {
            layer_lora[layer][projection].push_back(&delta);
            placed = true;
            break;
          }
        }
      }
      if (!placed) {
        throw FormatError(fmt::format("{}: '{}' names no weight of this model", adapter.info.path.string(), name));
      }
    }
  }
}

void Model::Impl::apply_lora(std::span<const LoraDelta* const> deltas, const float* in, size_t tokens, float* out,
                             bool per_token, std::span<const float* const> row_scales) {
  std::vector<float> low, delta, factors(tokens);
  for (const LoraDelta* d : deltas) {
    // Each token's factor: its sequence's scale for this adapter (or the
    // loaded one) times alpha / rank. An adapter no token uses costs nothing.
    bool used = false;
    for (size_t t = 0; t < tokens; ++t) {
      const float* scales = row_scales.empty() ? nullptr : row_scales[t];
      factors[t] = scales ? scales[d->adapter] * d->unit_scale : d->scale;
      used = used || factors[t] != 0.0f;
    }
    if (!used) continue;
    const auto rank = static_cast<size_t>(d->rank), rows = static_cast<size_t>(d->rows);
    const WeightMatrix a{TensorType::F32, reinterpret_cast<const uint8_t*>(d->a.data()), d->rank, d->cols,
                         static_cast<size_t>(d->cols) * sizeof(float)};
    const WeightMatrix b{TensorType::F32, reinterpret_cast<const uint8_t*>(d->b.data()), d->rows, d->rank,
                         rank * sizeof(float)};
    low.resize(tokens * rank);
    delta.resize(tokens * rows);
    matmul(a, in, tokens, low.data(), *pool, per_token);
    matmul(b, low.data(), tokens, delta.data(), *pool, per_token);
    for (size_t t = 0; t < tokens; ++t) {
      for (size_t r = 0; r < rows; ++r) out[t * rows + r] += factors[t] * delta[t * rows + r];
    }
  }
}

const std::vector<LoraInfo>& Model::loras() const { return impl_->lora_info; }

}  // namespace frugal
