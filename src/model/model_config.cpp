// Model configuration from GGUF metadata (keys `<arch>.*`).
#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/model.h"

namespace frugal {

ModelConfig ModelConfig::from_gguf(const GgufFile& file) {
  ModelConfig c;
  c.architecture = file.get_string_or("general.architecture", "");
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
  if (c.rope_scaling != RopeScaling::None && c.rope_scaling_factor <= 0) {
    throw FormatError(fmt::format("{}: rope scaling factor {} must be positive", file.source_name(),
                                  c.rope_scaling_factor));
  }
  c.rope_original_context = file.get_int_or(a + "rope.scaling.original_context_length", c.training_context);
  c.yarn_beta_fast = static_cast<float>(file.get_float_or(a + "rope.scaling.yarn_beta_fast", 32.0));
  c.yarn_beta_slow = static_cast<float>(file.get_float_or(a + "rope.scaling.yarn_beta_slow", 1.0));
  c.llama3_low_freq_factor = static_cast<float>(file.get_float_or(a + "rope.scaling.low_freq_factor", 1.0));
  c.llama3_high_freq_factor = static_cast<float>(file.get_float_or(a + "rope.scaling.high_freq_factor", 4.0));

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
