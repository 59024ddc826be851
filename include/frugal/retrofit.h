// Retrofitting a trained model without training it again: fewer key/value
// heads (multi-head or grouped-query attention turned into grouped-query
// attention with fewer KV heads), which divides the KV cache -- every
// session's, every knowledge cache's -- by the same factor.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "frugal/kv_trie.h"

namespace frugal {

enum class HeadMerge {
  // Consecutive KV heads averaged (the usual training-free baseline).
  Mean,
  // On a calibration text: KV heads grouped by how alike their keys and
  // values are, and each head turned towards its group's first before the
  // average, with the turn folded into the query and output projections so
  // that, before averaging, the model computes exactly what it did. Values
  // get the orthogonal turn that best maps one head's values onto the
  // other's (Procrustes); keys, per rotary pair, the 2-D rotation and scale
  // that best align them (these commute with the rotary embedding; the
  // queries get the inverse). Models with per-head Q/K norms (Qwen3) keep
  // their keys as they are.
  Aligned,
};

struct RetrofitOptions {
  int64_t kv_heads = 0;                // the new count; divides the old one
  HeadMerge merge = HeadMerge::Aligned;
  std::vector<TokenId> calibration;    // tokens the Aligned merge measures on (a few thousand)
  size_t threads = 0;                  // 0: the CPUs this process may use
};

struct RetrofitReport {
  int64_t kv_heads_before = 0, kv_heads_after = 0;
  size_t kv_bytes_per_token_before = 0, kv_bytes_per_token_after = 0;  // F32 keys and values, all layers
  // Per layer, the old KV heads of each new one.
  std::vector<std::vector<std::vector<int64_t>>> groups;
  double seconds = 0;
};

// Reads `input`, writes `output` with options.kv_heads KV heads. Throws
// Error when the count does not divide the model's, Aligned has no
// calibration tokens, or output is input.
RetrofitReport retrofit_kv_heads(const std::filesystem::path& input, const std::filesystem::path& output,
                                 const RetrofitOptions& options);

}  // namespace frugal
