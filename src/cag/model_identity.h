// Fingerprints of a model and its tokenizer, so a knowledge cache is only
// ever used with the model that computed it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <span>

#include "frugal/gguf.h"
#include "frugal/lora.h"

namespace frugal::cag {

struct ModelIdentity {
  uint64_t model_fingerprint = 0;      // architecture metadata, tensor names/shapes/types, sampled tensor bytes
  uint64_t tokenizer_fingerprint = 0;  // every tokenizer.ggml.* key
  nlohmann::json model;                // readable summary, to say what differs
  nlohmann::json tokenizer;
};

// With `adapters` (LoRA applied unmerged) their fingerprints and scales are
// part of the model's: a cache built with an adapter is another model's.
ModelIdentity identify_model(const GgufFile& file, std::span<const LoraInfo> adapters = {});

// "architecture: llama (cache) vs qwen2 (model)", one line per field of the
// readable summaries that differs.
std::vector<std::string> describe_differences(const nlohmann::json& stored, const nlohmann::json& current);

}  // namespace frugal::cag
