// GGUF v3 writer: used to save converted models and, in tests, to build small
// models of any shape.
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "frugal/atomic_file.h"
#include "frugal/error.h"
#include "frugal/gguf.h"

namespace frugal {

namespace {

class ByteSink {
 public:
  explicit ByteSink(std::vector<uint8_t>& out) : out_(out) {}
  template <typename T>
  void put(T value) {
    const size_t at = out_.size();
    out_.resize(at + sizeof(T));
    std::memcpy(out_.data() + at, &value, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void pad_to(uint64_t alignment) {
    while (out_.size() % alignment) out_.push_back(0);
  }

 private:
  std::vector<uint8_t>& out_;
};

void put_value(ByteSink& sink, const GgufValue& v) {
  switch (v.type) {
    case GgufType::UInt8: sink.put<uint8_t>(static_cast<uint8_t>(v.as_uint())); break;
    case GgufType::Int8: sink.put<int8_t>(static_cast<int8_t>(v.as_int())); break;
    case GgufType::UInt16: sink.put<uint16_t>(static_cast<uint16_t>(v.as_uint())); break;
    case GgufType::Int16: sink.put<int16_t>(static_cast<int16_t>(v.as_int())); break;
    case GgufType::UInt32: sink.put<uint32_t>(static_cast<uint32_t>(v.as_uint())); break;
    case GgufType::Int32: sink.put<int32_t>(static_cast<int32_t>(v.as_int())); break;
    case GgufType::UInt64: sink.put<uint64_t>(v.as_uint()); break;
    case GgufType::Int64: sink.put<int64_t>(v.as_int()); break;
    case GgufType::Float32: sink.put<float>(static_cast<float>(v.as_float())); break;
    case GgufType::Float64: sink.put<double>(v.as_float()); break;
    case GgufType::Bool: sink.put<uint8_t>(v.as_bool() ? 1 : 0); break;
    case GgufType::String: sink.put_string(v.as_string()); break;
    case GgufType::Array: {
      const auto& array = v.as_array();
      sink.put<uint32_t>(static_cast<uint32_t>(array.element_type));
      sink.put<uint64_t>(array.items.size());
      for (const auto& item : array.items) {
        if (item.type != array.element_type) {
          throw Error(fmt::format("GGUF writer: array of {} holds a {} item", gguf_type_name(array.element_type),
                                  gguf_type_name(item.type)));
        }
        put_value(sink, item);
      }
      break;
    }
  }
}

}  // namespace

GgufWriter::GgufWriter() = default;

void GgufWriter::set(std::string key, GgufValue value) {
  if (key == "general.alignment") alignment_ = value.as_uint();
  for (auto& [existing, old] : metadata_) {
    if (existing == key) {
      old = std::move(value);
      return;
    }
  }
  metadata_.emplace_back(std::move(key), std::move(value));
}

void GgufWriter::set_alignment(uint64_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    throw Error(fmt::format("GGUF writer: alignment {} is not a power of two", alignment));
  }
  set("general.alignment", GgufValue::u32(static_cast<uint32_t>(alignment)));
}

GgufWriter::PendingTensor& GgufWriter::check_new_tensor(std::string name, TensorType type,
                                                        std::vector<int64_t> shape) {
  if (shape.empty() || shape.size() > 4) {
    throw Error(fmt::format("GGUF writer: tensor '{}' has {} dimensions, expected 1 to 4", name, shape.size()));
  }
  const auto& traits = tensor_type_traits(type);
  uint64_t elements = 1;
  for (int64_t d : shape) {
    if (d <= 0) throw Error(fmt::format("GGUF writer: tensor '{}' has a dimension of {}", name, d));
    elements *= static_cast<uint64_t>(d);
  }
  if (shape[0] % static_cast<int64_t>(traits.block_elements) != 0) {
    throw Error(fmt::format("GGUF writer: tensor '{}' row length {} is not a multiple of {} ({})", name, shape[0],
                            traits.block_elements, traits.name));
  }
  for (const auto& t : tensors_) {
    if (t.name == name) throw Error(fmt::format("GGUF writer: duplicate tensor name '{}'", name));
  }
  PendingTensor& t = tensors_.emplace_back();
  t.name = std::move(name);
  t.type = type;
  t.shape = std::move(shape);
  t.size_bytes = elements / traits.block_elements * traits.block_bytes;
  return t;
}

void GgufWriter::add_tensor(std::string name, TensorType type, std::vector<int64_t> shape,
                            std::span<const uint8_t> data) {
  const std::string tensor_name = name;
  PendingTensor& t = check_new_tensor(std::move(name), type, std::move(shape));
  if (data.size() != t.size_bytes) {
    const uint64_t expected = t.size_bytes;
    tensors_.pop_back();
    throw Error(fmt::format("GGUF writer: tensor '{}' needs {} bytes, got {}", tensor_name, expected, data.size()));
  }
  t.data.assign(data.begin(), data.end());
}

void GgufWriter::add_tensor(std::string name, TensorType type, std::vector<int64_t> shape, RowSource source) {
  if (!source) throw Error(fmt::format("GGUF writer: tensor '{}' has no row source", name));
  check_new_tensor(std::move(name), type, std::move(shape)).source = std::move(source);
}

void GgufWriter::emit(const std::function<void(std::span<const uint8_t>)>& out) const {
  std::vector<uint8_t> header;
  ByteSink sink(header);
  sink.put<uint32_t>(0x46554747);
  sink.put<uint32_t>(3);
  sink.put<uint64_t>(tensors_.size());
  sink.put<uint64_t>(metadata_.size());
  for (const auto& [key, value] : metadata_) {
    sink.put_string(key);
    sink.put<uint32_t>(static_cast<uint32_t>(value.type));
    put_value(sink, value);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    sink.put_string(t.name);
    sink.put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape) sink.put<uint64_t>(static_cast<uint64_t>(d));
    sink.put<uint32_t>(static_cast<uint32_t>(t.type));
    sink.put<uint64_t>(offset);
    offset += (t.size_bytes + alignment_ - 1) / alignment_ * alignment_;
  }
  sink.pad_to(alignment_);
  out(header);

  const std::vector<uint8_t> padding(alignment_, 0);
  std::vector<uint8_t> chunk;
  for (const auto& t : tensors_) {
    if (!t.source) {
      out(t.data);
    } else {
      // A few MiB per call: large enough to keep the source's per-call work
      // cheap, small enough that memory stays modest for any model.
      constexpr size_t kChunkBytes = size_t{8} << 20;
      const size_t row_bytes = tensor_row_bytes(t.type, static_cast<size_t>(t.shape[0]));
      const int64_t rows = static_cast<int64_t>(t.size_bytes / row_bytes);
      const int64_t rows_per_chunk = std::max<int64_t>(1, static_cast<int64_t>(kChunkBytes / row_bytes));
      for (int64_t first = 0; first < rows; first += rows_per_chunk) {
        const int64_t count = std::min(rows_per_chunk, rows - first);
        chunk.assign(static_cast<size_t>(count) * row_bytes, 0);
        t.source(first, count, chunk);
        out(chunk);
      }
    }
    if (const uint64_t tail = t.size_bytes % alignment_; tail != 0) {
      out(std::span(padding).first(static_cast<size_t>(alignment_ - tail)));
    }
  }
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  std::vector<uint8_t> bytes;
  emit([&](std::span<const uint8_t> part) { bytes.insert(bytes.end(), part.begin(), part.end()); });
  return bytes;
}

void GgufWriter::write(const std::filesystem::path& path) const {
  write_file_atomically(path, [&](const AtomicFileSink& sink) { emit(sink); });
}

}  // namespace frugal
