#include "frugal/quantize.h"

#include <algorithm>
#include <filesystem>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/gguf.h"
#include "frugal/model.h"
#include "frugal/quant.h"

namespace frugal {

namespace {

// A weight matrix: 2-D, named *.weight (embeddings, projections, output).
bool is_matrix(const GgufTensor& t) {
  return t.n_dims == 2 && t.name.size() > 7 && t.name.ends_with(".weight");
}

// Re-encodes rows [first, first + count) of `t` into `out` as `type`,
// splitting the rows over threads.
void convert_rows(const GgufTensor& t, TensorType type, int64_t first, int64_t count, std::span<uint8_t> out,
                  size_t threads) {
  const size_t width = static_cast<size_t>(t.shape[0]);
  const size_t in_row = tensor_row_bytes(t.type, width), out_row = tensor_row_bytes(type, width);
  auto work = [&](int64_t begin, int64_t end) {
    std::vector<float> row(width);
    for (int64_t r = begin; r < end; ++r) {
      dequantize_row(t.type, t.data + static_cast<size_t>(first + r) * in_row, row.data(), width);
      quantize_row(type, row.data(), out.data() + static_cast<size_t>(r) * out_row, width);
    }
  };
  const int64_t parts = std::clamp<int64_t>(count / 64, 1, static_cast<int64_t>(threads));
  if (parts == 1) {
    work(0, count);
    return;
  }
  std::vector<std::jthread> workers;
  for (int64_t p = 0; p < parts; ++p) {
    workers.emplace_back([&, p] { work(count * p / parts, count * (p + 1) / parts); });
  }
}

}  // namespace

QuantizeSummary quantize_model(const std::filesystem::path& input, const std::filesystem::path& output,
                               const WeightFormat& format, size_t threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  GgufFile file = GgufFile::open(input);
  const ModelConfig config = ModelConfig::from_gguf(file);  // a model frugal can run, or a clear error
  if (std::filesystem::exists(output) && std::filesystem::equivalent(input, output)) {
    throw Error(fmt::format("{}: the output would overwrite the input (it is mapped while converting); "
                            "write to another file", output.string()));
  }
  const bool tied = file.find_tensor("output.weight") == nullptr;
  GgufWriter writer;
  for (const auto& [key, value] : file.metadata()) {
    if (key == "general.alignment") continue;
    writer.set(key, value);
  }
  writer.set("general.file_type", GgufValue::u32(format.llama_file_type()));
  if (tensor_type_traits(format.base).block_elements > 1) {
    writer.set("general.quantization_version", GgufValue::u32(2));
  }
  QuantizeSummary summary;
  summary.input_bytes = file.file_size();
  for (const GgufTensor& t : file.tensors()) {
    std::vector<int64_t> shape(t.shape.begin(), t.shape.begin() + std::max<uint32_t>(t.n_dims, 1));
    TensorType type = t.type;
    if (is_matrix(t)) {
      type = weight_tensor_type(format, t.name, t.shape[0], config.layer_count, tied);
      if (!tensor_type_traits(t.type).can_dequantize) {
        throw UnsupportedError(fmt::format("{}: tensor '{}' is stored as {}, which frugal cannot convert",
                                           input.string(), t.name, tensor_type_name(t.type)));
      }
    }
    ++summary.tensor_types[type];
    if (type == t.type) {
      writer.add_tensor(t.name, type, shape, std::span<const uint8_t>(t.data, t.size_bytes));
      continue;
    }
    ++summary.converted;
    const GgufTensor* source = &t;
    writer.add_tensor(t.name, type, shape, [source, type, threads](int64_t first, int64_t count, std::span<uint8_t> out) {
      convert_rows(*source, type, first, count, out, threads);
    });
  }
  writer.write(output);
  summary.output_bytes = std::filesystem::file_size(output);
  return summary;
}

}  // namespace frugal
