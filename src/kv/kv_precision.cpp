#include "frugal/kv_precision.h"

#include <algorithm>
#include <array>
#include <cctype>

#include <fmt/format.h>

#include "frugal/error.h"

namespace frugal {

namespace {

struct PrecisionInfo {
  KvPrecision precision;
  std::string_view name;
  size_t block_values;
  size_t block_bytes;
};

constexpr std::array<PrecisionInfo, 5> kPrecisions{{
    {KvPrecision::F32, "f32", 1, 4},
    {KvPrecision::F16, "f16", 1, 2},
    {KvPrecision::Q8_0, "q8_0", kKvQuantBlock, 34},
    {KvPrecision::Q4_0, "q4_0", kKvQuantBlock, 18},
    {KvPrecision::Q4_H, "q4_h", kKvQuantBlock, 18},
}};

const PrecisionInfo& info(KvPrecision precision) {
  for (const PrecisionInfo& p : kPrecisions) {
    if (p.precision == precision) return p;
  }
  throw Error(fmt::format("unknown KV type {}", static_cast<int>(precision)));
}

}  // namespace

std::string_view kv_precision_name(KvPrecision precision) { return info(precision).name; }

std::optional<KvPrecision> parse_kv_precision(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const PrecisionInfo& p : kPrecisions) {
    if (p.name == lower) return p.precision;
  }
  return std::nullopt;
}

std::string kv_precision_names() {
  std::string names;
  for (const PrecisionInfo& p : kPrecisions) names += (names.empty() ? "" : ", ") + std::string(p.name);
  return names;
}

bool kv_quantized(KvPrecision precision) { return info(precision).block_values > 1; }

size_t kv_bytes(KvPrecision precision, size_t values) {
  const PrecisionInfo& p = info(precision);
  return values / p.block_values * p.block_bytes;
}

bool kv_precision_fits(KvPrecision precision, size_t head_size) {
  return head_size > 0 && head_size % info(precision).block_values == 0;
}

void check_kv_precision(KvPrecision precision, size_t head_size) {
  if (kv_precision_fits(precision, head_size)) return;
  throw Error(fmt::format("KV type {} (--cache-type, -ctk, -ctv) stores blocks of {} values per head, and this "
                          "model's heads have {}; use f16 or f32", kv_precision_name(precision),
                          info(precision).block_values, head_size));
}

std::string kv_types_name(KvTypes types) {
  if (types.same()) return std::string(kv_precision_name(types.keys));
  return fmt::format("{}/{}", kv_precision_name(types.keys), kv_precision_name(types.values));
}

void check_kv_types(KvTypes types, size_t head_size) {
  check_kv_precision(types.keys, head_size);
  check_kv_precision(types.values, head_size);
}

}  // namespace frugal
