// Random-weight GGUF models of real shapes: for benchmarks (the speed of a
// model depends on its shapes and formats, not on its values) and for tests.
//
// Weights are generated and quantized a chunk of rows at a time while the
// file is written, so even a 1B model needs only a few MiB of memory. Every
// row's values depend only on the seed, the tensor name and the row index:
// the bytes do not depend on thread count or tensor order.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "frugal/gguf.h"
#include "frugal/model.h"
#include "frugal/tensor_type.h"

namespace frugal {

// Dimensions and options of a transformer, as frugal reads them from GGUF
// metadata (see ModelConfig).
struct ModelShape {
  std::string name;                    // general.name
  std::string architecture = "llama";  // llama, qwen2, qwen3
  int64_t vocab = 0;
  int64_t embedding = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_size = 0;  // 0: embedding / heads
  int64_t feed_forward = 0;
  int64_t context = 2048;
  float rms_epsilon = 1e-5f;
  float rope_base = 10000.0f;
  // Metadata keys `rope.scaling.*`: none, linear, yarn, llama3.
  std::string rope_scaling = "none";
  float rope_scaling_factor = 1.0f;
  int64_t rope_original_context = 0;
  // Written as the `rope_freqs.weight` tensor when not empty (what llama.cpp's
  // converter does for Llama 3.1+ instead of the metadata keys).
  std::vector<float> rope_frequency_factors;
  bool tied_embeddings = true;
  bool qkv_bias = false;  // qwen2
  bool qk_norm = false;   // qwen3

  int64_t resolved_head_size() const { return head_size ? head_size : embedding / heads; }
  // Throws Error naming the first inconsistent dimension.
  void check() const;
};

// The shapes of published models, by lower-case name (vocab left 0: it comes
// from the vocabulary file). Throws Error listing the known names.
ModelShape named_model_shape(std::string_view name);
std::vector<std::string> named_model_shape_names();

// How the 2-D weight matrices are stored: one type for all (`Pure`), or one
// of llama-quantize's mixes, which give some tensors more bits.
struct WeightFormat {
  enum class Mix { Pure, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M };
  std::string name;  // as the user wrote it, upper case: "Q8_0", "Q4_K_M"
  TensorType base = TensorType::F32;
  Mix mix = Mix::Pure;

  // "q8_0", "Q4_K_M", "f16"... Throws Error listing the valid names.
  static WeightFormat parse(std::string_view name);
  static WeightFormat pure(TensorType type);
  static std::vector<std::string> names();
  // llama.cpp's `general.file_type` value (llama_ftype) for this format.
  uint32_t llama_file_type() const;
};

// Name of a llama.cpp `general.file_type` value ("Q4_K_M"); "" if unknown.
std::string_view llama_file_type_name(uint32_t file_type);

// The type a 2-D weight tensor gets under `format`, following llama-quantize
// (llama.cpp src/llama-quant.cpp): the mix's rules for output, attn_v and
// ffn_down, then its fallback for rows that are not whole blocks (Q4_K ->
// Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K -> Q4_0, then F16).
TensorType weight_tensor_type(const WeightFormat& format, std::string_view tensor_name, int64_t row_length,
                              int64_t layer_count, bool tied_embeddings);

struct SyntheticWeights {
  uint64_t seed = 1;
  float matrix_std = 0.02f;  // matrices ~ N(0, std^2): keeps activations near unit scale
  float norm_spread = 0.0f;  // norm weights uniform in [1 - spread, 1 + spread]
  float bias_spread = 0.02f; // biases uniform in [-spread, spread]
};

struct SyntheticModelSpec {
  ModelShape shape;
  WeightFormat format;
  SyntheticWeights weights;
  // Written after the architecture keys, e.g. a vocabulary's tokenizer.* keys.
  std::vector<std::pair<std::string, GgufValue>> extra_metadata;
  size_t threads = 0;  // 0: all hardware threads
};

struct SyntheticModelSummary {
  uint64_t parameters = 0;
  uint64_t file_bytes = 0;
  std::map<TensorType, int> tensor_types;  // count of tensors per stored type
  int fallbacks = 0;                      // matrices whose rows forced another type
};

// Writes the model atomically to `path` (temporary file, fsync, rename).
SyntheticModelSummary write_synthetic_model(const SyntheticModelSpec& spec, const std::filesystem::path& path);

// Every `tokenizer.*` key of a GGUF file, in file order.
std::vector<std::pair<std::string, GgufValue>> tokenizer_metadata(const GgufFile& file);
// Number of tokens in a file's `tokenizer.ggml.tokens`.
int64_t tokenizer_token_count(const GgufFile& file);

}  // namespace frugal
