#include "cag/model_identity.h"

#include <map>

#include <fmt/format.h>
#include <xxhash.h>

namespace frugal::cag {

namespace {

class Hasher {
 public:
  Hasher() : state_(XXH3_createState()) {
    if (state_ == nullptr) throw std::bad_alloc();
    XXH3_64bits_reset(state_);
  }
  ~Hasher() { XXH3_freeState(state_); }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void bytes(const void* data, size_t size) { XXH3_64bits_update(state_, data, size); }
  template <typename T>
  void value(const T& v) { bytes(&v, sizeof v); }
  void text(std::string_view s) {
    value(static_cast<uint64_t>(s.size()));
    bytes(s.data(), s.size());
  }
  uint64_t digest() const { return XXH3_64bits_digest(state_); }

 private:
  XXH3_state_t* state_;
};

void hash_value(Hasher& hasher, const GgufValue& value) {
  hasher.value(static_cast<uint32_t>(value.type));
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          hasher.text(v);
        } else if constexpr (std::is_same_v<T, GgufArray>) {
          hasher.value(static_cast<uint32_t>(v.element_type));
          hasher.value(static_cast<uint64_t>(v.items.size()));
          for (const GgufValue& item : v.items) hash_value(hasher, item);
        } else {
          hasher.value(v);
        }
      },
      value.value);
}

bool is_tokenizer_key(std::string_view key) { return key.rfind("tokenizer.", 0) == 0; }

// Keys that change what the model computes: its architecture's
// hyperparameters. general.* (names, licences, URLs) and the chat template
// do not.
bool is_model_key(std::string_view key, std::string_view architecture) {
  if (key == "general.architecture") return true;
  return !architecture.empty() && key.size() > architecture.size() && key.rfind(architecture, 0) == 0 &&
         key[architecture.size()] == '.';
}

// Up to 4 KiB of each tensor (its start, middle and end): enough to tell
// two trainings or quantizations apart, cheap for a multi-gigabyte file.
void hash_tensor_sample(Hasher& hasher, const GgufTensor& tensor) {
  constexpr uint64_t kPiece = 1024;
  if (tensor.size_bytes <= 4 * kPiece) {
    hasher.bytes(tensor.data, tensor.size_bytes);
    return;
  }
  for (uint64_t offset : {uint64_t{0}, tensor.size_bytes / 3, 2 * tensor.size_bytes / 3, tensor.size_bytes - kPiece}) {
    hasher.bytes(tensor.data + offset, kPiece);
  }
}

}  // namespace

ModelIdentity identify_model(const GgufFile& file, std::span<const LoraInfo> adapters) {
  ModelIdentity identity;
  const std::string architecture = file.get_string_or("general.architecture", "");
  Hasher model, tokenizer;
  std::map<std::string, int> type_counts;
  for (const auto& [key, value] : file.metadata()) {
    if (is_tokenizer_key(key)) {
      if (key == "tokenizer.chat_template") continue;  // a prompt choice, not part of the vocabulary
      tokenizer.text(key);
      hash_value(tokenizer, value);
    } else if (is_model_key(key, architecture)) {
      model.text(key);
      hash_value(model, value);
    }
  }
  uint64_t parameters = 0;
  for (const GgufTensor& tensor : file.tensors()) {
    model.text(tensor.name);
    model.value(static_cast<uint32_t>(tensor.type));
    for (int64_t dim : tensor.shape) model.value(dim);
    hash_tensor_sample(model, tensor);
    ++type_counts[std::string(tensor_type_name(tensor.type))];
    parameters += static_cast<uint64_t>(tensor.element_count());
  }
  std::string adapter_names;
  for (const LoraInfo& adapter : adapters) {
    model.value(adapter.fingerprint);  // its tensors, alpha and scale
    adapter_names += fmt::format("{}{} x{}", adapter_names.empty() ? "" : ", ", adapter.path.filename().string(),
                                 adapter.scale);
  }
  identity.model_fingerprint = model.digest();
  identity.tokenizer_fingerprint = tokenizer.digest();

  std::string types;
  for (const auto& [type, count] : type_counts) types += fmt::format("{}{} {}", types.empty() ? "" : ", ", count, type);
  identity.model = {
      {"architecture", architecture},
      {"name", file.get_string_or("general.name", "")},
      {"layers", file.get_int_or(architecture + ".block_count", 0)},
      {"embedding", file.get_int_or(architecture + ".embedding_length", 0)},
      {"tensors", file.tensors().size()},
      {"parameters", parameters},
      {"tensor types", types},
      {"LoRA adapters", adapter_names.empty() ? "none" : adapter_names},
  };
  const auto* tokens = file.find("tokenizer.ggml.tokens");
  identity.tokenizer = {
      {"model", file.get_string_or("tokenizer.ggml.model", "")},
      {"pre-tokenizer", file.get_string_or("tokenizer.ggml.pre", "default")},
      {"vocabulary", tokens && tokens->type == GgufType::Array ? tokens->as_array().items.size() : 0},
      {"bos", file.get_int_or("tokenizer.ggml.bos_token_id", -1)},
      {"eos", file.get_int_or("tokenizer.ggml.eos_token_id", -1)},
  };
  return identity;
}

std::vector<std::string> describe_differences(const nlohmann::json& stored, const nlohmann::json& current) {
  std::vector<std::string> lines;
  if (!stored.is_object() || !current.is_object()) return lines;
  for (const auto& [key, value] : current.items()) {
    // The name is shown in summaries but is not part of the fingerprint.
    if (key == "name" || !stored.contains(key) || stored[key] == value) continue;
    auto show = [](const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
    lines.push_back(fmt::format("{}: {} (cache) vs {} (model)", key, show(stored[key]), show(value)));
  }
  return lines;
}

}  // namespace frugal::cag
