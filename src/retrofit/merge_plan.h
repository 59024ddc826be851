// What a KV-head merge does to one layer: which old heads form each new
// one, and how each head is turned towards its group's first before the
// average (measured on calibration activations).
#pragma once

#include <cstdint>
#include <vector>

#include "frugal/model.h"

namespace frugal::retrofit {

// A rotary pair (dims a, b) of a key head turned by `angle` and scaled by
// `scale`: (x, y) -> scale * (x cos - y sin, x sin + y cos). Queries of
// the head get the same angle and 1 / scale, so every score stays.
struct PairTurn {
  double cos = 1, sin = 0, scale = 1;
};

struct HeadTurn {
  std::vector<double> value;     // hs x hs, row-major, v' = value^T v; empty: none
  std::vector<PairTurn> key;     // per rotary pair; empty: none
};

struct LayerPlan {
  std::vector<std::vector<int64_t>> groups;  // old KV heads of each new head, first = reference
  std::vector<HeadTurn> turns;               // per old KV head
};

// Keys (after the rotary embedding) and values of every layer over the
// calibration tokens: [layer][token * kv_width + head * head_size + i].
struct Activations {
  std::vector<std::vector<float>> keys, values;
  size_t tokens = 0;
};
Activations measure_activations(Model& model, const std::vector<TokenId>& tokens);

// The rotary pairs of a head: dims (2i, 2i + 1) or (i, i + d/2) of the
// rotated d = rope_dimensions.
std::vector<std::pair<size_t, size_t>> rotary_pairs(const ModelConfig& config);

// Consecutive heads, no turns.
LayerPlan mean_plan(const ModelConfig& config, int64_t kv_heads);
// Heads grouped by how well one maps onto another after the best turn,
// each turned towards its group's first. `turn_keys` false: keys stay.
LayerPlan aligned_plan(const ModelConfig& config, int64_t kv_heads, const Activations& activations, int64_t layer,
                       bool turn_keys);

}  // namespace frugal::retrofit
