// GgufValue conversions and rendering.
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/gguf.h"

namespace frugal {

std::string_view gguf_type_name(GgufType type) {
  switch (type) {
    case GgufType::UInt8: return "uint8";
    case GgufType::Int8: return "int8";
    case GgufType::UInt16: return "uint16";
    case GgufType::Int16: return "int16";
    case GgufType::UInt32: return "uint32";
    case GgufType::Int32: return "int32";
    case GgufType::Float32: return "float32";
    case GgufType::Bool: return "bool";
    case GgufType::String: return "string";
    case GgufType::Array: return "array";
    case GgufType::UInt64: return "uint64";
    case GgufType::Int64: return "int64";
    case GgufType::Float64: return "float64";
  }
  return "unknown";
}

GgufValue GgufValue::string_array(const std::vector<std::string>& items) {
  std::vector<GgufValue> values;
  values.reserve(items.size());
  for (const auto& item : items) values.push_back(string(item));
  return array(GgufType::String, std::move(values));
}

GgufValue GgufValue::f32_array(const std::vector<float>& items) {
  std::vector<GgufValue> values;
  values.reserve(items.size());
  for (float item : items) values.push_back(f32(item));
  return array(GgufType::Float32, std::move(values));
}

GgufValue GgufValue::i32_array(const std::vector<int32_t>& items) {
  std::vector<GgufValue> values;
  values.reserve(items.size());
  for (int32_t item : items) values.push_back(i32(item));
  return array(GgufType::Int32, std::move(values));
}

bool GgufValue::is_integer() const {
  return std::holds_alternative<uint64_t>(value) || std::holds_alternative<int64_t>(value);
}

bool GgufValue::is_number() const { return is_integer() || std::holds_alternative<double>(value); }

namespace {
[[noreturn]] void wrong_type(const GgufValue& v, std::string_view wanted) {
  throw FormatError(fmt::format("metadata value is {}, expected {}", gguf_type_name(v.type), wanted));
}
}  // namespace

int64_t GgufValue::as_int() const {
  if (const auto* u = std::get_if<uint64_t>(&value)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) wrong_type(*this, "an int64-sized integer");
    return static_cast<int64_t>(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&value)) return *i;
  if (const auto* b = std::get_if<bool>(&value)) return *b ? 1 : 0;
  wrong_type(*this, "an integer");
}

uint64_t GgufValue::as_uint() const {
  if (const auto* u = std::get_if<uint64_t>(&value)) return *u;
  if (const auto* i = std::get_if<int64_t>(&value)) {
    if (*i < 0) wrong_type(*this, "a non-negative integer");
    return static_cast<uint64_t>(*i);
  }
  wrong_type(*this, "an unsigned integer");
}

double GgufValue::as_float() const {
  if (const auto* d = std::get_if<double>(&value)) return *d;
  if (const auto* u = std::get_if<uint64_t>(&value)) return static_cast<double>(*u);
  if (const auto* i = std::get_if<int64_t>(&value)) return static_cast<double>(*i);
  wrong_type(*this, "a number");
}

bool GgufValue::as_bool() const {
  if (const auto* b = std::get_if<bool>(&value)) return *b;
  if (is_integer()) return as_int() != 0;
  wrong_type(*this, "a bool");
}

const std::string& GgufValue::as_string() const {
  if (const auto* s = std::get_if<std::string>(&value)) return *s;
  wrong_type(*this, "a string");
}

const GgufArray& GgufValue::as_array() const {
  if (const auto* a = std::get_if<GgufArray>(&value)) return *a;
  wrong_type(*this, "an array");
}

std::vector<std::string> GgufValue::as_string_vector() const {
  const auto& arr = as_array();
  std::vector<std::string> out;
  out.reserve(arr.items.size());
  for (const auto& item : arr.items) out.push_back(item.as_string());
  return out;
}

std::vector<float> GgufValue::as_float_vector() const {
  const auto& arr = as_array();
  std::vector<float> out;
  out.reserve(arr.items.size());
  for (const auto& item : arr.items) out.push_back(static_cast<float>(item.as_float()));
  return out;
}

std::vector<int32_t> GgufValue::as_int32_vector() const {
  const auto& arr = as_array();
  std::vector<int32_t> out;
  out.reserve(arr.items.size());
  for (const auto& item : arr.items) {
    int64_t v = item.as_int();
    if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
      wrong_type(item, "an int32-sized integer");
    }
    out.push_back(static_cast<int32_t>(v));
  }
  return out;
}

std::string GgufValue::to_display_string(size_t max_items) const {
  return std::visit(
      [&](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          std::string shown = v.size() > 80 ? v.substr(0, 77) + "..." : v;
          for (auto& c : shown) {
            if (c == '\n') c = ' ';
          }
          return "\"" + shown + "\"";
        } else if constexpr (std::is_same_v<T, GgufArray>) {
          std::string out = fmt::format("[{} x {}: ", v.items.size(), gguf_type_name(v.element_type));
          for (size_t i = 0; i < v.items.size() && i < max_items; ++i) {
            if (i) out += ", ";
            out += v.items[i].to_display_string(max_items);
          }
          if (v.items.size() > max_items) out += ", ...";
          return out + "]";
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else {
          return fmt::format("{}", v);
        }
      },
      value);
}

std::string GgufTensor::shape_string() const {
  std::string out = "[";
  for (uint32_t i = 0; i < n_dims; ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

}  // namespace frugal
