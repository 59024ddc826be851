// How keys and values are stored: in a KvCache, the shared-prefix KvTrie and
// knowledge files (.fkv). Quantized types keep blocks of 32 values with one
// F16 scale each, in ggml's byte layouts, so a head's slice of a row is whole
// blocks when the head size is a multiple of 32.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace frugal {

enum class KvPrecision {
  F32,
  F16,
  Q8_0,  // 8.5 bits a value (ggml's Q8_0)
  Q4_0,  // 4.5 bits a value (ggml's Q4_0)
  // 4.5 bits a value: each block of 32 turned by an orthonormal Hadamard
  // transform before it is quantized (Q4_0's layout, a scale chosen by least
  // squares). The transform spreads a few large channels (keys have them)
  // over the whole block, so they no longer decide every other value's step;
  // attention turns the queries and its outputs the same way instead of
  // undoing it row by row.
  Q4_H,
};

inline constexpr size_t kKvQuantBlock = 32;  // values per block of the quantized types

// "f32", "f16", "q8_0", "q4_0", "q4_h": the spellings of --cache-type.
std::string_view kv_precision_name(KvPrecision precision);
std::optional<KvPrecision> parse_kv_precision(std::string_view name);  // case-insensitive
std::string kv_precision_names();  // "f32, f16, q8_0, q4_0, q4_h" (for messages)

bool kv_quantized(KvPrecision precision);  // a block type
// Bytes of `values` keys or values (a multiple of kKvQuantBlock for the block
// types: see kv_precision_fits).
size_t kv_bytes(KvPrecision precision, size_t values);
// Whether heads of `head_size` values can be stored in this type.
bool kv_precision_fits(KvPrecision precision, size_t head_size);
// Throws Error saying what to use instead when kv_precision_fits is false.
void check_kv_precision(KvPrecision precision, size_t head_size);

// The types of the keys and of the values (llama.cpp's -ctk / -ctv); one
// type converts to both.
struct KvTypes {
  KvPrecision keys = KvPrecision::F32;
  KvPrecision values = KvPrecision::F32;

  constexpr KvTypes() = default;
  constexpr KvTypes(KvPrecision both) : keys(both), values(both) {}  // NOLINT: one type for both is the usual case
  constexpr KvTypes(KvPrecision k, KvPrecision v) : keys(k), values(v) {}
  constexpr bool operator==(const KvTypes&) const = default;
  constexpr bool same() const { return keys == values; }
};
// "q8_0", or "q8_0/q4_h" when keys and values differ.
std::string kv_types_name(KvTypes types);
// Both must fit (check_kv_precision).
void check_kv_types(KvTypes types, size_t head_size);

}  // namespace frugal
