#include "frugal/tensor_type.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>

#include "frugal/error.h"

namespace frugal {
namespace {

// Block layouts from the GGUF specification (ggml's type_traits).
constexpr std::array kTraits = {
    TensorTypeTraits{TensorType::F32, "F32", 1, 4, true},
    TensorTypeTraits{TensorType::F16, "F16", 1, 2, true},
    TensorTypeTraits{TensorType::Q4_0, "Q4_0", 32, 18, true},
    TensorTypeTraits{TensorType::Q4_1, "Q4_1", 32, 20, true},
    TensorTypeTraits{TensorType::Q5_0, "Q5_0", 32, 22, true},
    TensorTypeTraits{TensorType::Q5_1, "Q5_1", 32, 24, true},
    TensorTypeTraits{TensorType::Q8_0, "Q8_0", 32, 34, true},
    TensorTypeTraits{TensorType::Q8_1, "Q8_1", 32, 36, true},
    TensorTypeTraits{TensorType::Q2_K, "Q2_K", 256, 84, true},
    TensorTypeTraits{TensorType::Q3_K, "Q3_K", 256, 110, true},
    TensorTypeTraits{TensorType::Q4_K, "Q4_K", 256, 144, true},
    TensorTypeTraits{TensorType::Q5_K, "Q5_K", 256, 176, true},
    TensorTypeTraits{TensorType::Q6_K, "Q6_K", 256, 210, true},
    TensorTypeTraits{TensorType::Q8_K, "Q8_K", 256, 292, true},
    TensorTypeTraits{TensorType::I8, "I8", 1, 1, false},
    TensorTypeTraits{TensorType::I16, "I16", 1, 2, false},
    TensorTypeTraits{TensorType::I32, "I32", 1, 4, false},
    TensorTypeTraits{TensorType::I64, "I64", 1, 8, false},
    TensorTypeTraits{TensorType::F64, "F64", 1, 8, false},
    TensorTypeTraits{TensorType::BF16, "BF16", 1, 2, true},
};

}  // namespace

std::optional<TensorTypeTraits> tensor_type_traits(uint32_t raw_type) {
  for (const auto& traits : kTraits) {
    if (static_cast<uint32_t>(traits.type) == raw_type) return traits;
  }
  return std::nullopt;
}

const TensorTypeTraits& tensor_type_traits(TensorType type) {
  for (const auto& traits : kTraits) {
    if (traits.type == type) return traits;
  }
  throw UnsupportedError("unknown tensor type id " + std::to_string(static_cast<uint32_t>(type)));
}

std::string_view tensor_type_name(TensorType type) { return tensor_type_traits(type).name; }

std::optional<TensorType> tensor_type_from_name(std::string_view name) {
  std::string upper(name);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  for (const auto& traits : kTraits) {
    if (traits.name == upper) return traits.type;
  }
  return std::nullopt;
}

size_t tensor_row_bytes(TensorType type, size_t elements) {
  const auto& traits = tensor_type_traits(type);
  return elements / traits.block_elements * traits.block_bytes;
}

}  // namespace frugal
