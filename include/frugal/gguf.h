// GGUF files: a memory-mapped reader (versions 2 and 3) and a writer.
//
// The reader validates the whole header up front (counts, lengths, tensor
// extents, alignment) so that later code can index tensors without checks.
// Tensor data is never copied: `GgufTensor::data` points into the mapping.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "frugal/tensor_type.h"

namespace frugal {

// Metadata value types, numbered as in the GGUF specification.
enum class GgufType : uint32_t {
  UInt8 = 0,
  Int8 = 1,
  UInt16 = 2,
  Int16 = 3,
  UInt32 = 4,
  Int32 = 5,
  Float32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  UInt64 = 10,
  Int64 = 11,
  Float64 = 12,
};

std::string_view gguf_type_name(GgufType type);

struct GgufValue;
struct GgufArray {
  GgufType element_type = GgufType::UInt8;
  std::vector<GgufValue> items;
};

// One metadata value. Integers keep their signedness; the original GGUF type
// is kept so a writer can reproduce the file exactly.
struct GgufValue {
  GgufType type = GgufType::UInt8;
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> value;

  static GgufValue u8(uint8_t v) { return {GgufType::UInt8, uint64_t{v}}; }
  static GgufValue u32(uint32_t v) { return {GgufType::UInt32, uint64_t{v}}; }
  static GgufValue u64(uint64_t v) { return {GgufType::UInt64, v}; }
  static GgufValue i32(int32_t v) { return {GgufType::Int32, int64_t{v}}; }
  static GgufValue i64(int64_t v) { return {GgufType::Int64, v}; }
  static GgufValue f32(float v) { return {GgufType::Float32, double{v}}; }
  static GgufValue f64(double v) { return {GgufType::Float64, v}; }
  static GgufValue boolean(bool v) { return {GgufType::Bool, v}; }
  static GgufValue string(std::string v) { return {GgufType::String, std::move(v)}; }
  static GgufValue array(GgufType element_type, std::vector<GgufValue> items) {
    return {GgufType::Array, GgufArray{element_type, std::move(items)}};
  }
  static GgufValue string_array(const std::vector<std::string>& items);
  static GgufValue f32_array(const std::vector<float>& items);
  static GgufValue i32_array(const std::vector<int32_t>& items);

  bool is_integer() const;
  bool is_number() const;  // integer or float
  // Conversions throw frugal::Error naming the expected type on mismatch.
  int64_t as_int() const;
  uint64_t as_uint() const;
  double as_float() const;
  bool as_bool() const;
  const std::string& as_string() const;
  const GgufArray& as_array() const;
  std::vector<std::string> as_string_vector() const;
  std::vector<float> as_float_vector() const;
  std::vector<int32_t> as_int32_vector() const;
  // Short human-readable rendering (arrays are summarised).
  std::string to_display_string(size_t max_items = 8) const;
};

struct GgufTensor {
  std::string name;
  TensorType type = TensorType::F32;
  // ggml order: shape[0] is the contiguous (row) dimension.
  std::array<int64_t, 4> shape{1, 1, 1, 1};
  uint32_t n_dims = 0;
  uint64_t offset = 0;      // relative to the start of the data section
  uint64_t size_bytes = 0;
  const uint8_t* data = nullptr;  // into the mapping

  int64_t element_count() const { return shape[0] * shape[1] * shape[2] * shape[3]; }
  int64_t rows() const { return shape[1] * shape[2] * shape[3]; }
  std::string shape_string() const;
};

// Limits that keep a hostile file from exhausting memory before the data
// checks can reject it.
struct GgufLimits {
  uint64_t max_string_bytes = 1ull << 28;
  uint64_t max_array_items = 1ull << 28;
  uint32_t max_array_depth = 8;
};

class GgufFile {
 public:
  // Maps and parses `path`; throws FormatError naming the file and the fault.
  static GgufFile open(const std::filesystem::path& path, const GgufLimits& limits = {});
  // Parses a file image already in memory (tests, fuzzing). `bytes` must
  // outlive the GgufFile.
  static GgufFile parse(std::span<const uint8_t> bytes, std::string source_name = "<memory>",
                        const GgufLimits& limits = {});

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  const std::string& source_name() const { return source_name_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return bytes_.size(); }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const GgufValue* find(std::string_view key) const;
  // Typed accessors: the `_or` forms return `fallback` when the key is
  // absent; the plain forms throw FormatError naming the missing key.
  const GgufValue& require(std::string_view key) const;
  std::string get_string(std::string_view key) const;
  std::string get_string_or(std::string_view key, std::string fallback) const;
  int64_t get_int(std::string_view key) const;
  int64_t get_int_or(std::string_view key, int64_t fallback) const;
  double get_float_or(std::string_view key, double fallback) const;
  bool get_bool_or(std::string_view key, bool fallback) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<float> get_float_array(std::string_view key) const;
  std::vector<int32_t> get_int32_array(std::string_view key) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(std::string_view name) const;
  const GgufTensor& require_tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  struct Mapping;
  void parse_all(const GgufLimits& limits);

  std::string source_name_;
  std::unique_ptr<Mapping> mapping_;
  std::span<const uint8_t> bytes_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::map<std::string, size_t, std::less<>> metadata_index_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Builds a GGUF v3 file. Metadata keeps insertion order (a key set twice is
// replaced in place); tensors are laid out in insertion order, aligned.
class GgufWriter {
 public:
  GgufWriter();
  void set(std::string key, GgufValue value);
  void set_alignment(uint64_t alignment);
  // Copies `data`, which must hold exactly the bytes for `shape` in `type`.
  void add_tensor(std::string name, TensorType type, std::vector<int64_t> shape,
                  std::span<const uint8_t> data);
  // Produces the stored bytes of rows [first_row, first_row + row_count) of a
  // tensor into `out` (row_count rows of shape[0] elements, whole blocks).
  using RowSource = std::function<void(int64_t first_row, int64_t row_count, std::span<uint8_t> out)>;
  // Adds a tensor whose bytes `source` produces while the file is written, a
  // few MiB of rows at a time in row order, so a large model never has to sit
  // in memory whole.
  void add_tensor(std::string name, TensorType type, std::vector<int64_t> shape, RowSource source);
  // Serialises the whole file in memory.
  std::vector<uint8_t> to_bytes() const;
  // Writes atomically: temporary file, fsync, rename. Tensors from a
  // RowSource are streamed to the file, not built in memory first.
  void write(const std::filesystem::path& path) const;

 private:
  struct PendingTensor {
    std::string name;
    TensorType type;
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;  // empty when `source` produces the bytes
    RowSource source;
    uint64_t size_bytes = 0;
  };
  PendingTensor& check_new_tensor(std::string name, TensorType type, std::vector<int64_t> shape);
  // Emits the file in order through `out` (header, then each tensor, padded).
  void emit(const std::function<void(std::span<const uint8_t>)>& out) const;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<PendingTensor> tensors_;
  uint64_t alignment_ = 32;
};

}  // namespace frugal
