// A LoRA adapter file read and checked against the model it adapts: its
// matrices in F32, by the weight they change.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "frugal/gguf.h"
#include "frugal/lora.h"

namespace frugal {

// One weight's low-rank change: W x + scale * B (A x), A [rank x cols],
// B [rows x rank], row-major F32.
struct LoraDelta {
  std::vector<float> a, b;
  int64_t rank = 0, rows = 0, cols = 0;
  float scale = 1.0f;       // the user's scale times alpha / rank
  float unit_scale = 1.0f;  // alpha / rank (1 without alpha): the factor of a scale given per sequence
  size_t adapter = 0;       // its adapter's index among the model's
};

struct LoraAdapter {
  LoraInfo info;
  std::map<std::string, LoraDelta> deltas;  // by the adapted tensor's name ("blk.0.attn_q.weight")
};

// Reads `spec.path`: general.type "adapter", adapter.type "lora", the base
// model's architecture, tensor pairs NAME.lora_a / NAME.lora_b whose shapes
// fit `base`'s tensor NAME. Throws Error naming the file and what is wrong.
LoraAdapter read_lora_adapter(const LoraSpec& spec, const GgufFile& base);

}  // namespace frugal
