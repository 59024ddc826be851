// Converting a model file to another weight format without retraining
// (`frugal quantize`): the 2-D weight matrices are re-encoded (dequantized
// to F32, then quantized as ggml's reference quantizers do), everything else
// is copied. Which matrix gets which type follows llama-quantize
// (weight_tensor_type in synth.h), so `Q4_K_M` here is llama.cpp's mix.
#pragma once

#include <filesystem>
#include <map>

#include "frugal/synth.h"

namespace frugal {

struct QuantizeSummary {
  uint64_t input_bytes = 0;
  uint64_t output_bytes = 0;
  std::map<TensorType, int> tensor_types;  // count of tensors per stored type in the output
  int converted = 0;                        // matrices re-encoded
};

// Reads `input` (any GGUF model frugal loads), writes `output` atomically.
// Throws Error for a file that is not a model or a format that cannot hold a
// tensor (rows that are no whole blocks fall back as llama-quantize does).
QuantizeSummary quantize_model(const std::filesystem::path& input, const std::filesystem::path& output,
                               const WeightFormat& format, size_t threads = 0);

}  // namespace frugal
