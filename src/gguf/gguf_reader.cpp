// GGUF reader: maps the file and validates every count, length and extent
// before anything else touches it. Errors name the file, the byte offset and
// what was expected.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/gguf.h"

namespace frugal {

namespace {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as little-endian u32
constexpr uint32_t kMaxDims = 4;

// Bounds-checked little-endian reader over the file image.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  uint64_t offset() const { return offset_; }
  uint64_t remaining() const { return bytes_.size() - offset_; }

  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError(fmt::format("{}: invalid GGUF file at byte {}: {}", source_, offset_, what));
  }

  template <typename T>
  T read(const char* what) {
    if (remaining() < sizeof(T)) {
      fail(fmt::format("file truncated while reading {} ({} bytes needed, {} left)", what, sizeof(T),
                       remaining()));
    }
    T value;
    std::memcpy(&value, bytes_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
    return value;
  }

  std::string read_string(const char* what, uint64_t max_bytes) {
    const uint64_t length = read<uint64_t>(what);
    if (length > max_bytes) {
      fail(fmt::format("{} has absurd length {} (limit {})", what, length, max_bytes));
    }
    if (length > remaining()) {
      fail(fmt::format("file truncated inside {} ({} bytes claimed, {} left)", what, length, remaining()));
    }
    std::string s(reinterpret_cast<const char*>(bytes_.data() + offset_), length);
    offset_ += length;
    return s;
  }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& source_;
  uint64_t offset_ = 0;
};

// Smallest number of bytes one element of `type` can occupy, used to reject
// counts that cannot possibly fit in what is left of the file.
uint64_t min_encoded_size(GgufType type) {
  switch (type) {
    case GgufType::UInt8:
    case GgufType::Int8:
    case GgufType::Bool: return 1;
    case GgufType::UInt16:
    case GgufType::Int16: return 2;
    case GgufType::UInt32:
    case GgufType::Int32:
    case GgufType::Float32: return 4;
    case GgufType::UInt64:
    case GgufType::Int64:
    case GgufType::Float64:
    case GgufType::String: return 8;
    case GgufType::Array: return 12;
  }
  return 1;
}

bool valid_value_type(uint32_t raw) { return raw <= static_cast<uint32_t>(GgufType::Float64); }

GgufValue read_value(Cursor& cursor, GgufType type, const GgufLimits& limits, uint32_t depth) {
  switch (type) {
    case GgufType::UInt8: return {type, uint64_t{cursor.read<uint8_t>("uint8 value")}};
    case GgufType::Int8: return {type, int64_t{cursor.read<int8_t>("int8 value")}};
    case GgufType::UInt16: return {type, uint64_t{cursor.read<uint16_t>("uint16 value")}};
    case GgufType::Int16: return {type, int64_t{cursor.read<int16_t>("int16 value")}};
    case GgufType::UInt32: return {type, uint64_t{cursor.read<uint32_t>("uint32 value")}};
    case GgufType::Int32: return {type, int64_t{cursor.read<int32_t>("int32 value")}};
    case GgufType::UInt64: return {type, cursor.read<uint64_t>("uint64 value")};
    case GgufType::Int64: return {type, cursor.read<int64_t>("int64 value")};
    case GgufType::Float32: return {type, double{cursor.read<float>("float32 value")}};
    case GgufType::Float64: return {type, cursor.read<double>("float64 value")};
    case GgufType::Bool: {
      const uint8_t b = cursor.read<uint8_t>("bool value");
      if (b > 1) cursor.fail(fmt::format("bool value is {}, expected 0 or 1", b));
      return {type, b != 0};
    }
    case GgufType::String: return {type, cursor.read_string("string value", limits.max_string_bytes)};
    case GgufType::Array: {
      if (depth >= limits.max_array_depth) {
        cursor.fail(fmt::format("arrays nested deeper than {}", limits.max_array_depth));
      }
      const uint32_t raw_element = cursor.read<uint32_t>("array element type");
      if (!valid_value_type(raw_element)) {
        cursor.fail(fmt::format("unknown array element type {}", raw_element));
      }
      const auto element_type = static_cast<GgufType>(raw_element);
      const uint64_t count = cursor.read<uint64_t>("array length");
      if (count > limits.max_array_items) {
        cursor.fail(fmt::format("array has absurd length {} (limit {})", count, limits.max_array_items));
      }
      if (count > cursor.remaining() / min_encoded_size(element_type)) {
        cursor.fail(fmt::format("array of {} {} values cannot fit in the {} bytes left", count,
                                gguf_type_name(element_type), cursor.remaining()));
      }
      GgufArray array{element_type, {}};
      array.items.reserve(count);
      for (uint64_t i = 0; i < count; ++i) {
        array.items.push_back(read_value(cursor, element_type, limits, depth + 1));
      }
      return {type, std::move(array)};
    }
  }
  cursor.fail("unreachable value type");
}

}  // namespace

struct GgufFile::Mapping {
  void* address = nullptr;
  size_t length = 0;
  ~Mapping() {
    if (address) munmap(address, length);
  }
};

GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

GgufFile GgufFile::open(const std::filesystem::path& path, const GgufLimits& limits) {
  GgufFile file;
  file.source_name_ = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(fmt::format("{}: cannot open: {}", file.source_name_, std::strerror(errno)));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(fmt::format("{}: not a regular file", file.source_name_));
  }
  const auto size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    throw FormatError(fmt::format("{}: invalid GGUF file: the file is empty", file.source_name_));
  }
  void* address = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (address == MAP_FAILED) {
    throw Error(fmt::format("{}: cannot map the file: {}", file.source_name_, std::strerror(errno)));
  }
  file.mapping_ = std::make_unique<Mapping>();
  file.mapping_->address = address;
  file.mapping_->length = size;
  file.bytes_ = {static_cast<const uint8_t*>(address), size};
  file.parse_all(limits);
  return file;
}

GgufFile GgufFile::parse(std::span<const uint8_t> bytes, std::string source_name, const GgufLimits& limits) {
  GgufFile file;
  file.source_name_ = std::move(source_name);
  file.bytes_ = bytes;
  file.parse_all(limits);
  return file;
}

void GgufFile::parse_all(const GgufLimits& limits) {
  Cursor cursor(bytes_, source_name_);
  if (bytes_.size() < 4) cursor.fail("file too small to be GGUF (no magic)");
  const uint32_t magic = cursor.read<uint32_t>("magic");
  if (magic != kGgufMagic) {
    throw FormatError(fmt::format("{}: not a GGUF file (magic bytes are {:02x} {:02x} {:02x} {:02x}, expected \"GGUF\")",
                                  source_name_, bytes_[0], bytes_[1], bytes_[2], bytes_[3]));
  }
  version_ = cursor.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) {
    cursor.fail(fmt::format("GGUF version {} is not supported (frugal reads versions 2 and 3{})", version_,
                            version_ == 1 ? "; re-convert this old file with a current converter" : ""));
  }
  const uint64_t tensor_count = cursor.read<uint64_t>("tensor count");
  const uint64_t metadata_count = cursor.read<uint64_t>("metadata count");
  // Each metadata entry takes at least 12 bytes (key length + type), each
  // tensor entry at least 24 (name length, dims count, type, offset).
  if (metadata_count > cursor.remaining() / 12) {
    cursor.fail(fmt::format("metadata count {} cannot fit in the {} bytes left", metadata_count, cursor.remaining()));
  }
  if (tensor_count > cursor.remaining() / 24) {
    cursor.fail(fmt::format("tensor count {} cannot fit in the {} bytes left", tensor_count, cursor.remaining()));
  }

  metadata_.reserve(metadata_count);
  for (uint64_t i = 0; i < metadata_count; ++i) {
    std::string key = cursor.read_string("metadata key", 65535);
    const uint32_t raw_type = cursor.read<uint32_t>("metadata value type");
    if (!valid_value_type(raw_type)) {
      cursor.fail(fmt::format("metadata key '{}' has unknown value type {}", key, raw_type));
    }
    GgufValue value = read_value(cursor, static_cast<GgufType>(raw_type), limits, 0);
    if (metadata_index_.count(key)) cursor.fail(fmt::format("duplicate metadata key '{}'", key));
    metadata_index_.emplace(key, metadata_.size());
    metadata_.emplace_back(std::move(key), std::move(value));
  }

  if (const GgufValue* align = find("general.alignment")) {
    if (!align->is_integer()) cursor.fail("general.alignment is not an integer");
    const uint64_t a = align->as_uint();
    if (a == 0 || (a & (a - 1)) != 0 || a > (1u << 20)) {
      cursor.fail(fmt::format("general.alignment is {}, expected a power of two", a));
    }
    alignment_ = a;
  }

  tensors_.reserve(tensor_count);
  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensor tensor;
    tensor.name = cursor.read_string("tensor name", 65535);
    tensor.n_dims = cursor.read<uint32_t>("tensor dimension count");
    if (tensor.n_dims == 0 || tensor.n_dims > kMaxDims) {
      cursor.fail(fmt::format("tensor '{}' has {} dimensions, expected 1 to {}", tensor.name, tensor.n_dims, kMaxDims));
    }
    uint64_t elements = 1;
    for (uint32_t d = 0; d < tensor.n_dims; ++d) {
      const uint64_t dim = cursor.read<uint64_t>("tensor dimension");
      if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        cursor.fail(fmt::format("tensor '{}' dimension {} is {}", tensor.name, d, dim));
      }
      if (elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / dim) {
        cursor.fail(fmt::format("tensor '{}' element count overflows", tensor.name));
      }
      elements *= dim;
      tensor.shape[d] = static_cast<int64_t>(dim);
    }
    const uint32_t raw_type = cursor.read<uint32_t>("tensor type");
    const auto traits = tensor_type_traits(raw_type);
    if (!traits) {
      cursor.fail(fmt::format("tensor '{}' has unknown or unsupported tensor type {}", tensor.name, raw_type));
    }
    tensor.type = traits->type;
    if (static_cast<uint64_t>(tensor.shape[0]) % traits->block_elements != 0) {
      cursor.fail(fmt::format("tensor '{}' ({}) row length {} is not a multiple of the block size {}",
                              tensor.name, traits->name, tensor.shape[0], traits->block_elements));
    }
    tensor.size_bytes = elements / traits->block_elements * traits->block_bytes;
    if (tensor.size_bytes / traits->block_bytes != elements / traits->block_elements) {
      cursor.fail(fmt::format("tensor '{}' byte size overflows", tensor.name));
    }
    tensor.offset = cursor.read<uint64_t>("tensor data offset");
    if (tensor.offset % alignment_ != 0) {
      cursor.fail(fmt::format("tensor '{}' data offset {} is not a multiple of the alignment {}", tensor.name,
                              tensor.offset, alignment_));
    }
    if (tensor_index_.count(tensor.name)) cursor.fail(fmt::format("duplicate tensor name '{}'", tensor.name));
    tensor_index_.emplace(tensor.name, tensors_.size());
    tensors_.push_back(std::move(tensor));
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t header_end = cursor.offset();
  data_offset_ = (header_end + alignment_ - 1) / alignment_ * alignment_;
  if (!tensors_.empty() && data_offset_ > bytes_.size()) {
    throw FormatError(fmt::format("{}: invalid GGUF file: truncated before the tensor data (data starts at byte {}, "
                                  "file has {} bytes)", source_name_, data_offset_, bytes_.size()));
  }
  const uint64_t data_bytes = tensors_.empty() ? 0 : bytes_.size() - data_offset_;
  for (auto& tensor : tensors_) {
    if (tensor.offset > data_bytes || tensor.size_bytes > data_bytes - tensor.offset) {
      throw FormatError(fmt::format(
          "{}: invalid GGUF file: tensor '{}' ({} {}, {} bytes at data offset {}) extends past the end of the file "
          "by {} bytes; the file is truncated or corrupt", source_name_, tensor.name,
          tensor_type_name(tensor.type), tensor.shape_string(), tensor.size_bytes, tensor.offset,
          tensor.offset > data_bytes ? tensor.offset - data_bytes + tensor.size_bytes
                                     : tensor.size_bytes - (data_bytes - tensor.offset)));
    }
    tensor.data = bytes_.data() + data_offset_ + tensor.offset;
  }
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = metadata_index_.find(key);
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufValue& GgufFile::require(std::string_view key) const {
  if (const GgufValue* v = find(key)) return *v;
  throw FormatError(fmt::format("{}: required metadata key '{}' is missing", source_name_, key));
}

namespace {
template <typename F>
auto with_key(const std::string& source, std::string_view key, F&& f) {
  try {
    return f();
  } catch (const FormatError& e) {
    throw FormatError(fmt::format("{}: metadata key '{}': {}", source, key, e.what()));
  }
}
}  // namespace

std::string GgufFile::get_string(std::string_view key) const {
  const GgufValue& v = require(key);
  return with_key(source_name_, key, [&] { return v.as_string(); });
}

std::string GgufFile::get_string_or(std::string_view key, std::string fallback) const {
  const GgufValue* v = find(key);
  return v ? with_key(source_name_, key, [&] { return v->as_string(); }) : fallback;
}

int64_t GgufFile::get_int(std::string_view key) const {
  const GgufValue& v = require(key);
  return with_key(source_name_, key, [&] { return v.as_int(); });
}

int64_t GgufFile::get_int_or(std::string_view key, int64_t fallback) const {
  const GgufValue* v = find(key);
  return v ? with_key(source_name_, key, [&] { return v->as_int(); }) : fallback;
}

double GgufFile::get_float_or(std::string_view key, double fallback) const {
  const GgufValue* v = find(key);
  return v ? with_key(source_name_, key, [&] { return v->as_float(); }) : fallback;
}

bool GgufFile::get_bool_or(std::string_view key, bool fallback) const {
  const GgufValue* v = find(key);
  return v ? with_key(source_name_, key, [&] { return v->as_bool(); }) : fallback;
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  const GgufValue& v = require(key);
  return with_key(source_name_, key, [&] { return v.as_string_vector(); });
}

std::vector<float> GgufFile::get_float_array(std::string_view key) const {
  const GgufValue& v = require(key);
  return with_key(source_name_, key, [&] { return v.as_float_vector(); });
}

std::vector<int32_t> GgufFile::get_int32_array(std::string_view key) const {
  const GgufValue& v = require(key);
  return with_key(source_name_, key, [&] { return v.as_int32_vector(); });
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensor& GgufFile::require_tensor(std::string_view name) const {
  if (const GgufTensor* t = find_tensor(name)) return *t;
  throw FormatError(fmt::format("{}: required tensor '{}' is missing", source_name_, name));
}

}  // namespace frugal
