// LoRA adapters (llama.cpp's GGUF adapter files): read, checked against the
// model they adapt, applied unmerged (y = Wx + s * B(Ax)) so that the base
// file stays shared, or merged into a new model file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "frugal/tensor_type.h"

namespace frugal {

// An adapter to apply and its scale (llama.cpp's --lora / --lora-scaled).
struct LoraSpec {
  std::filesystem::path path;
  float scale = 1.0f;
};

// What an applied adapter is (Model::loras()).
struct LoraInfo {
  std::filesystem::path path;
  float scale = 1.0f;   // the user's
  float alpha = 0;      // adapter.lora.alpha (0: none, the factor is `scale` alone)
  int64_t rank = 0;     // of its first matrix
  size_t matrices = 0;  // weights it adapts
  uint64_t fingerprint = 0;  // of its tensors and alpha, with the scale (knowledge caches record it)
};

// Writes BASE with ADAPTERS merged in (W + sum of s * B A) to OUT: adapted
// matrices in `type` (nullopt: each keeps its own), the rest copied.
// Returns the number of matrices changed. Throws Error for an adapter that
// does not fit the model.
size_t merge_lora(const std::filesystem::path& base, const std::vector<LoraSpec>& adapters,
                  const std::filesystem::path& out, std::optional<TensorType> type = std::nullopt);

}  // namespace frugal
