// Model configuration from GGUF metadata (keys `<arch>.*`).
#include <cmath>
#include <string_view>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/model.h"

namespace frugal {

ModelConfig ModelConfig::from_gguf(const GgufFile& file) {
  ModelConfig c;
  c.architecture = file.get_string_or("general.architecture", "");
  if (c.architecture == "bert") {
    throw UnsupportedError(fmt::format("{}: a BERT encoder makes embeddings, not text: use `frugal embed` or "
                                       "`frugal serve --embedding`",
                                       file.source_name()));
  }
  if (c.architecture != "llama" && c.architecture != "qwen2" && c.architecture != "qwen3") {
    throw UnsupportedError(fmt::format("{}: architecture '{}' is not supported (frugal runs llama, qwen2, qwen3)",
                                       file.source_name(), c.architecture));
  }
  const std::string a = c.architecture + ".";
  c.name = file.get_string_or("general.name", "");
  c.embedding_size = file.get_int(a + "embedding_length");
  c.layer_count = file.get_int(a + "block_count");
  c.feed_forward_size = file.get_int(a + "feed_forward_length");
  c.head_count = file.get_int(a + "attention.head_count");
  c.kv_head_count = file.get_int_or(a + "attention.head_count_kv", c.head_count);
  c.training_context = file.get_int_or(a + "context_length", 2048);
  c.rms_epsilon = static_cast<float>(file.get_float_or(a + "attention.layer_norm_rms_epsilon", 1e-5));
  if (c.head_count <= 0 || c.kv_head_count <= 0 || c.embedding_size <= 0 || c.layer_count <= 0 ||
      c.feed_forward_size <= 0) {
    throw FormatError(fmt::format("{}: model dimensions must be positive (embedding {}, layers {}, heads {}/{}, ffn {})",
                                  file.source_name(), c.embedding_size, c.layer_count, c.head_count,
                                  c.kv_head_count, c.feed_forward_size));
  }
  if (c.head_count % c.kv_head_count != 0) {
    throw FormatError(fmt::format("{}: head count {} is not a multiple of the key/value head count {}",
                                  file.source_name(), c.head_count, c.kv_head_count));
  }
  c.head_size = file.get_int_or(a + "attention.key_length", c.embedding_size / c.head_count);
  // Dimensions beyond these are not a model this engine can hold; checking
  // them here keeps every later size computation free of overflow.
  constexpr int64_t kMaxDimension = int64_t{1} << 20;
  for (const auto& [name, value] : {std::pair{"embedding_length", c.embedding_size},
                                    {"block_count", c.layer_count}, {"feed_forward_length", c.feed_forward_size},
                                    {"attention.head_count", c.head_count}, {"attention.key_length", c.head_size}}) {
    if (value <= 0 || value > kMaxDimension) {
      throw FormatError(fmt::format("{}: {}{} is {}, expected 1 to {}", file.source_name(), a, name, value,
                                    kMaxDimension));
    }
  }
  if (c.head_count * c.head_size > kMaxDimension || c.layer_count > static_cast<int64_t>(file.tensors().size())) {
    throw FormatError(fmt::format("{}: {} heads of {} and {} layers do not fit the file's {} tensors",
                                  file.source_name(), c.head_count, c.head_size, c.layer_count,
                                  file.tensors().size()));
  }
  if (c.training_context <= 0 || c.training_context > (int64_t{1} << 26)) {
    throw FormatError(fmt::format("{}: {}context_length is {}, expected 1 to {}", file.source_name(), a,
                                  c.training_context, int64_t{1} << 26));
  }
  const int64_t value_size = file.get_int_or(a + "attention.value_length", c.head_size);
  if (value_size != c.head_size) {
    throw UnsupportedError(fmt::format("{}: key length {} differs from value length {}", file.source_name(),
                                       c.head_size, value_size));
  }
  c.rope_dimensions = file.get_int_or(a + "rope.dimension_count", c.head_size);
  if (c.rope_dimensions <= 0 || c.rope_dimensions > c.head_size || c.rope_dimensions % 2 != 0) {
    throw FormatError(fmt::format("{}: rope dimension count {} is invalid for head size {}", file.source_name(),
                                  c.rope_dimensions, c.head_size));
  }
  c.rope_style = c.architecture == "llama" ? RopeStyle::Normal : RopeStyle::Neox;
  c.rope_freq_base = static_cast<float>(file.get_float_or(a + "rope.freq_base", 10000.0));

  const std::string scaling = file.get_string_or(a + "rope.scaling.type", "none");
  c.rope_scaling_factor = static_cast<float>(file.get_float_or(a + "rope.scaling.factor", 1.0));
  if (const auto* linear = file.find(a + "rope.scale_linear")) {  // older key
    c.rope_scaling = RopeScaling::Linear;
    c.rope_scaling_factor = static_cast<float>(linear->as_float());
  }
  if (scaling == "linear") {
    c.rope_scaling = RopeScaling::Linear;
  } else if (scaling == "yarn") {
    c.rope_scaling = RopeScaling::Yarn;
  } else if (scaling == "llama3") {
    c.rope_scaling = RopeScaling::Llama3;
  } else if (scaling != "none") {
    throw UnsupportedError(fmt::format("{}: rope scaling type '{}' is not supported (none, linear, yarn, llama3)",
                                       file.source_name(), scaling));
  }
  c.rope_original_context = file.get_int_or(a + "rope.scaling.original_context_length", c.training_context);
  c.yarn_beta_fast = static_cast<float>(file.get_float_or(a + "rope.scaling.yarn_beta_fast", 32.0));
  c.yarn_beta_slow = static_cast<float>(file.get_float_or(a + "rope.scaling.yarn_beta_slow", 1.0));
  c.llama3_low_freq_factor = static_cast<float>(file.get_float_or(a + "rope.scaling.low_freq_factor", 1.0));
  c.llama3_high_freq_factor = static_cast<float>(file.get_float_or(a + "rope.scaling.high_freq_factor", 4.0));

  for (const auto& [name, value] : {std::pair{"rms epsilon", c.rms_epsilon}, {"rope freq_base", c.rope_freq_base},
                                    {"yarn beta_fast", c.yarn_beta_fast}, {"yarn beta_slow", c.yarn_beta_slow},
                                    {"rope scaling factor", c.rope_scaling_factor}}) {
    if (!std::isfinite(value) || value < 0 || (value == 0 && std::string_view(name) != "rms epsilon")) {
      throw FormatError(fmt::format("{}: {} is {}, expected a positive finite number", file.source_name(), name,
                                    value));
    }
  }
  if (c.rope_scaling == RopeScaling::Yarn || c.rope_scaling == RopeScaling::Llama3) {
    if (c.rope_original_context <= 0) {
      throw FormatError(fmt::format("{}: rope scaling needs a positive original context length, got {}",
                                    file.source_name(), c.rope_original_context));
    }
  }
  if (c.rope_scaling == RopeScaling::Llama3 &&
      (!std::isfinite(c.llama3_low_freq_factor) || !std::isfinite(c.llama3_high_freq_factor) ||
       c.llama3_low_freq_factor <= 0 || c.llama3_high_freq_factor <= c.llama3_low_freq_factor)) {
    throw FormatError(fmt::format("{}: Llama 3 rope needs 0 < low_freq_factor < high_freq_factor, got {} and {}",
                                  file.source_name(), c.llama3_low_freq_factor, c.llama3_high_freq_factor));
  }

  const GgufTensor& embedding = file.require_tensor("token_embd.weight");
  c.vocab_size = embedding.shape[1];
  if (embedding.shape[0] != c.embedding_size) {
    throw FormatError(fmt::format("{}: token_embd.weight has shape {}, expected rows of {}", file.source_name(),
                                  embedding.shape_string(), c.embedding_size));
  }
  c.tied_embeddings = file.find_tensor("output.weight") == nullptr;
  c.qkv_bias = file.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = file.find_tensor("blk.0.attn_q_norm.weight") != nullptr;
  return c;
}

}  // namespace frugal
