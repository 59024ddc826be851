// Tensor storage formats. Numbering follows the GGUF specification (ggml's
// `ggml_type`), so a type read from a file can be cast directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace frugal {

enum class TensorType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct TensorTypeTraits {
  TensorType type;
  std::string_view name;
  size_t block_elements;  // elements per block (1 for plain types)
  size_t block_bytes;     // bytes per block
  bool can_dequantize;    // frugal can turn it into F32 for compute
};

// Traits of a raw GGUF type id; nullopt when frugal does not know the id.
std::optional<TensorTypeTraits> tensor_type_traits(uint32_t raw_type);
const TensorTypeTraits& tensor_type_traits(TensorType type);
std::string_view tensor_type_name(TensorType type);
// Parses "q8_0", "Q4_K", "f16"... (case-insensitive); nullopt if unknown.
std::optional<TensorType> tensor_type_from_name(std::string_view name);

// Bytes taken by `elements` values of `type`; elements must be a multiple of
// the block size (checked by callers that read files).
size_t tensor_row_bytes(TensorType type, size_t elements);

}  // namespace frugal
