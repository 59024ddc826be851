// Reading LoRA adapters (llama.cpp's GGUF layout) and merging them into a
// model file.
#include "model/lora_adapter.h"

#include <xxhash.h>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/quant.h"

namespace frugal {

namespace {

std::vector<float> to_f32(const GgufTensor& t) {
  const auto cols = static_cast<size_t>(t.shape[0]);
  const size_t rows = static_cast<size_t>(t.element_count()) / cols;
  if (!tensor_type_traits(t.type).can_dequantize) {
    throw UnsupportedError(fmt::format("tensor '{}' is stored as {}, which frugal cannot read", t.name,
                                       tensor_type_name(t.type)));
  }
  std::vector<float> out(rows * cols);
  const size_t row_bytes = tensor_row_bytes(t.type, cols);
  for (size_t r = 0; r < rows; ++r) dequantize_row(t.type, t.data + r * row_bytes, &out[r * cols], cols);
  return out;
}

// The weights a delta may change: the linear projections and the output.
bool adaptable(const std::string& name) {
  if (name == "output.weight") return true;
  if (!name.starts_with("blk.")) return false;
  for (const char* part : {".attn_q.weight", ".attn_k.weight", ".attn_v.weight", ".attn_output.weight",
                           ".ffn_gate.weight", ".ffn_up.weight", ".ffn_down.weight"}) {
    if (name.ends_with(part)) return true;
  }
  return false;
}

}  // namespace

LoraAdapter read_lora_adapter(const LoraSpec& spec, const GgufFile& base) {
  const std::string where = spec.path.string();
  GgufFile file = GgufFile::open(spec.path);
  const std::string type = file.get_string_or("general.type", "");
  if (type != "adapter" || file.get_string_or("adapter.type", "") != "lora") {
    throw FormatError(fmt::format("{}: not a LoRA adapter (general.type '{}', adapter.type '{}'; expected "
                                  "'adapter' and 'lora')",
                                  where, type, file.get_string_or("adapter.type", "")));
  }
  const std::string arch = file.get_string_or("general.architecture", "");
  const std::string base_arch = base.get_string_or("general.architecture", "");
  if (arch != base_arch) {
    throw FormatError(fmt::format("{}: an adapter for a {} model, but the model is {}", where, arch, base_arch));
  }
  LoraAdapter adapter;
  adapter.info.path = spec.path;
  adapter.info.scale = spec.scale;
  if (const GgufValue* alpha = file.find("adapter.lora.alpha")) adapter.info.alpha = static_cast<float>(alpha->as_float());
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  XXH3_64bits_update(state, &adapter.info.alpha, sizeof adapter.info.alpha);
  XXH3_64bits_update(state, &adapter.info.scale, sizeof adapter.info.scale);
  std::map<std::string, std::pair<const GgufTensor*, const GgufTensor*>> pairs;
  for (const GgufTensor& t : file.tensors()) {
    const bool is_a = t.name.ends_with(".lora_a"), is_b = t.name.ends_with(".lora_b");
    if (!is_a && !is_b) {
      XXH3_freeState(state);
      throw FormatError(fmt::format("{}: tensor '{}' is neither a .lora_a nor a .lora_b matrix", where, t.name));
    }
    auto& pair = pairs[t.name.substr(0, t.name.size() - 7)];
    (is_a ? pair.first : pair.second) = &t;
    XXH3_64bits_update(state, t.name.data(), t.name.size());
    XXH3_64bits_update(state, t.data, t.size_bytes);
  }
  adapter.info.fingerprint = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  for (const auto& [name, pair] : pairs) {
    const auto [a, b] = pair;
    if (!a || !b) throw FormatError(fmt::format("{}: '{}' has only one of lora_a and lora_b", where, name));
    if (!adaptable(name)) {
      throw UnsupportedError(fmt::format("{}: adapting '{}' is not supported (only the attention and "
                                         "feed-forward projections and output.weight)",
                                         where, name));
    }
    // A tied model has no output.weight: the embedding is its output matrix.
    const GgufTensor* target = base.find_tensor(name);
    if (!target && name == "output.weight") target = base.find_tensor("token_embd.weight");
    if (!target) throw FormatError(fmt::format("{}: the model has no tensor '{}' to adapt", where, name));
    const int64_t cols = target->shape[0], rows = target->shape[1];
    // ggml's shapes: lora_a [cols, rank], lora_b [rank, rows].
    if (a->n_dims != 2 || b->n_dims != 2 || a->shape[0] != cols || b->shape[1] != rows || a->shape[1] != b->shape[0]) {
      throw FormatError(fmt::format("{}: '{}' has lora_a {} and lora_b {}; for a weight of shape {} they must be "
                                    "[{}, r] and [r, {}]",
                                    where, name, a->shape_string(), b->shape_string(), target->shape_string(), cols,
                                    rows));
    }
    LoraDelta delta;
    delta.rank = a->shape[1];
    delta.rows = rows;
    delta.cols = cols;
    delta.a = to_f32(*a);
    delta.b = to_f32(*b);
    // llama.cpp's factor: scale * alpha / rank, or scale alone without alpha.
    delta.unit_scale = adapter.info.alpha != 0 ? adapter.info.alpha / static_cast<float>(delta.rank) : 1.0f;
    delta.scale = spec.scale * delta.unit_scale;
    if (adapter.info.rank == 0) adapter.info.rank = delta.rank;
    adapter.deltas.emplace(name, std::move(delta));
  }
  if (adapter.deltas.empty()) throw FormatError(fmt::format("{}: the adapter has no matrices", where));
  adapter.info.matrices = adapter.deltas.size();
  return adapter;
}

size_t merge_lora(const std::filesystem::path& base_path, const std::vector<LoraSpec>& specs,
                  const std::filesystem::path& out, std::optional<TensorType> type) {
  GgufFile base = GgufFile::open(base_path);
  if (std::filesystem::exists(out) && std::filesystem::equivalent(base_path, out)) {
    throw Error(fmt::format("{}: the output would overwrite the base model; write to another file", out.string()));
  }
  std::vector<LoraAdapter> adapters;
  for (const LoraSpec& spec : specs) adapters.push_back(read_lora_adapter(spec, base));
  if (base.find_tensor("output.weight") == nullptr) {
    for (const LoraAdapter& adapter : adapters) {
      if (adapter.deltas.count("output.weight")) {
        throw UnsupportedError(fmt::format("{}: the model ties its output to the embedding, so merging a change "
                                           "of output.weight would change the embedding too; apply it unmerged "
                                           "(--lora)",
                                           adapter.info.path.string()));
      }
    }
  }
  GgufWriter writer;
  for (const auto& [key, value] : base.metadata()) {
    if (key != "general.alignment") writer.set(key, value);
  }
  size_t merged = 0;
  for (const GgufTensor& t : base.tensors()) {
    std::vector<int64_t> shape(t.shape.begin(), t.shape.begin() + std::max<uint32_t>(t.n_dims, 1));
    std::vector<const LoraDelta*> deltas;
    for (const LoraAdapter& adapter : adapters) {
      if (auto it = adapter.deltas.find(t.name); it != adapter.deltas.end()) deltas.push_back(&it->second);
    }
    if (deltas.empty()) {
      writer.add_tensor(t.name, t.type, shape, std::span<const uint8_t>(t.data, t.size_bytes));
      continue;
    }
    ++merged;
    const TensorType out_type = type.value_or(t.type);
    const GgufTensor* source = &t;
    writer.add_tensor(t.name, out_type, shape,
                      [source, out_type, deltas](int64_t first, int64_t count, std::span<uint8_t> bytes) {
                        const auto cols = static_cast<size_t>(source->shape[0]);
                        const size_t in_row = tensor_row_bytes(source->type, cols);
                        const size_t out_row = tensor_row_bytes(out_type, cols);
                        std::vector<float> row(cols);
                        for (int64_t r = 0; r < count; ++r) {
                          const auto index = static_cast<size_t>(first + r);
                          dequantize_row(source->type, source->data + index * in_row, row.data(), cols);
                          for (const LoraDelta* d : deltas) {
                            // Row `index` of B A: B's row times A.
                            for (int64_t k = 0; k < d->rank; ++k) {
                              const float weight = d->scale * d->b[index * static_cast<size_t>(d->rank) + k];
                              const float* a_row = &d->a[static_cast<size_t>(k) * cols];
                              for (size_t c = 0; c < cols; ++c) row[c] += weight * a_row[c];
                            }
                          }
                          quantize_row(out_type, row.data(), bytes.data() + static_cast<size_t>(r) * out_row, cols);
                        }
                      });
  }
  writer.write(out);
  return merged;
}

}  // namespace frugal
