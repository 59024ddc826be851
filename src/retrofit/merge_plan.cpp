#include "retrofit/merge_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "frugal/error.h"
#include "retrofit/procrustes.h"

namespace frugal::retrofit {

namespace {

// One head's activations of a layer as rows [token][head_size].
struct HeadView {
  const float* base;
  size_t stride, tokens;
  double at(size_t t, size_t i) const { return base[t * stride + i]; }
};

HeadView head_view(const std::vector<float>& rows, size_t tokens, size_t kv_width, int64_t head, size_t head_size) {
  return {rows.data() + static_cast<size_t>(head) * head_size, kv_width, tokens};
}

// The value turn of `a` towards `b` (Procrustes on their activations) and
// what is left: ||A R - B||^2 / (||A||^2 + ||B||^2).
std::vector<double> value_turn(const HeadView& a, const HeadView& b, size_t hs, double* residual) {
  std::vector<double> cross(hs * hs, 0.0);
  double norms = 0;
  for (size_t t = 0; t < a.tokens; ++t) {
    for (size_t i = 0; i < hs; ++i) {
      norms += a.at(t, i) * a.at(t, i) + b.at(t, i) * b.at(t, i);
      for (size_t j = 0; j < hs; ++j) cross[i * hs + j] += a.at(t, i) * b.at(t, j);
    }
  }
  std::vector<double> r = orthogonal_procrustes(cross, hs);
  if (residual) {
    // ||AR - B||^2 = ||A||^2 + ||B||^2 - 2 tr(R^T A^T B)
    double trace = 0;
    for (size_t i = 0; i < hs; ++i) {
      for (size_t j = 0; j < hs; ++j) trace += r[i * hs + j] * cross[i * hs + j];
    }
    *residual = norms > 0 ? (norms - 2 * trace) / norms : 0;
  }
  return r;
}

// Per rotary pair, the rotation and scale that best map a's 2-D key pairs
// onto b's (least squares), and what is left, as above.
std::vector<PairTurn> key_turn(const HeadView& a, const HeadView& b, const std::vector<std::pair<size_t, size_t>>& pairs,
                               double* residual) {
  std::vector<PairTurn> turns;
  double left = 0, norms = 0;
  for (const auto& [d0, d1] : pairs) {
    double dot = 0, cross = 0, aa = 0, bb = 0;
    for (size_t t = 0; t < a.tokens; ++t) {
      const double xa = a.at(t, d0), ya = a.at(t, d1), xb = b.at(t, d0), yb = b.at(t, d1);
      dot += xa * xb + ya * yb;
      cross += xa * yb - ya * xb;
      aa += xa * xa + ya * ya;
      bb += xb * xb + yb * yb;
    }
    PairTurn turn;
    const double length = std::hypot(dot, cross);
    if (length > 0 && aa > 0) {
      turn.cos = dot / length;
      turn.sin = cross / length;
      // Least-squares scale, kept within 4x either way (a pair that barely
      // moves must not be blown up).
      turn.scale = std::clamp(length / aa, 0.25, 4.0);
    }
    // ||s R a - b||^2 = s^2 |a|^2 - 2 s (R a . b) + |b|^2, R a . b = length
    left += turn.scale * turn.scale * aa - 2 * turn.scale * length + bb;
    norms += aa + bb;
    turns.push_back(turn);
  }
  if (residual) *residual = norms > 0 ? left / norms : 0;
  return turns;
}

}  // namespace

Activations measure_activations(Model& model, const std::vector<TokenId>& tokens) {
  const ModelConfig& c = model.config();
  if (tokens.size() < 2) throw Error("the calibration text gives fewer than 2 tokens; give a longer one");
  const auto count = static_cast<int64_t>(tokens.size());
  KvCache cache(c, count);
  for (size_t begin = 0; begin < tokens.size(); begin += 512) {
    const size_t n = std::min<size_t>(512, tokens.size() - begin);
    model.forward(std::span<const TokenId>(tokens).subspan(begin, n), cache, false);
  }
  Activations a;
  a.tokens = tokens.size();
  const size_t width = cache.row_elements();
  for (int64_t layer = 0; layer < c.layer_count; ++layer) {
    const auto* keys = static_cast<const float*>(cache.key_row(layer, 0));
    const auto* values = static_cast<const float*>(cache.value_row(layer, 0));
    a.keys.emplace_back(keys, keys + a.tokens * width);
    a.values.emplace_back(values, values + a.tokens * width);
  }
  return a;
}

std::vector<std::pair<size_t, size_t>> rotary_pairs(const ModelConfig& c) {
  std::vector<std::pair<size_t, size_t>> pairs;
  const auto d = static_cast<size_t>(c.rope_dimensions);
  for (size_t i = 0; i < d / 2; ++i) {
    pairs.emplace_back(c.rope_style == RopeStyle::Normal ? std::pair{2 * i, 2 * i + 1} : std::pair{i, i + d / 2});
  }
  return pairs;
}

LayerPlan mean_plan(const ModelConfig& c, int64_t kv_heads) {
  LayerPlan plan;
  const int64_t group = c.kv_head_count / kv_heads;
  for (int64_t j = 0; j < kv_heads; ++j) {
    plan.groups.emplace_back();
    for (int64_t m = 0; m < group; ++m) plan.groups.back().push_back(j * group + m);
  }
  plan.turns.resize(static_cast<size_t>(c.kv_head_count));
  return plan;
}

LayerPlan aligned_plan(const ModelConfig& c, int64_t kv_heads, const Activations& activations, int64_t layer,
                       bool turn_keys) {
  const auto heads = static_cast<size_t>(c.kv_head_count), hs = static_cast<size_t>(c.head_size);
  const size_t width = heads * hs, group = heads / static_cast<size_t>(kv_heads);
  const auto& keys = activations.keys[static_cast<size_t>(layer)];
  const auto& values = activations.values[static_cast<size_t>(layer)];
  const auto pairs = rotary_pairs(c);
  const auto view = [&](const std::vector<float>& rows, size_t h) {
    return head_view(rows, activations.tokens, width, static_cast<int64_t>(h), hs);
  };
  // How far apart every two heads are, after the best turn of one onto the
  // other (values, and keys where they may be turned).
  std::vector<double> cost(heads * heads, 0.0);
  for (size_t a = 0; a < heads; ++a) {
    for (size_t b = a + 1; b < heads; ++b) {
      double value_left = 0, key_left = 0;
      value_turn(view(values, a), view(values, b), hs, &value_left);
      if (turn_keys) key_turn(view(keys, a), view(keys, b), pairs, &key_left);
      cost[a * heads + b] = cost[b * heads + a] = value_left + key_left;
    }
  }
  // Greedy groups: the first free head, and the free heads nearest to it.
  LayerPlan plan;
  std::vector<bool> taken(heads, false);
  for (size_t seed = 0; seed < heads; ++seed) {
    if (taken[seed]) continue;
    taken[seed] = true;
    std::vector<int64_t> members{static_cast<int64_t>(seed)};
    while (members.size() < group) {
      size_t best = heads;
      for (size_t h = 0; h < heads; ++h) {
        if (!taken[h] && (best == heads || cost[seed * heads + h] < cost[seed * heads + best])) best = h;
      }
      taken[best] = true;
      members.push_back(static_cast<int64_t>(best));
    }
    plan.groups.push_back(std::move(members));
  }
  plan.turns.resize(heads);
  for (const auto& members : plan.groups) {
    const auto reference = static_cast<size_t>(members.front());
    for (size_t m = 1; m < members.size(); ++m) {
      const auto h = static_cast<size_t>(members[m]);
      plan.turns[h].value = value_turn(view(values, h), view(values, reference), hs, nullptr);
      if (turn_keys) plan.turns[h].key = key_turn(view(keys, h), view(keys, reference), pairs, nullptr);
    }
  }
  return plan;
}

}  // namespace frugal::retrofit
