// Weight formats of synthetic models: the named types, llama-quantize's
// per-tensor mix rules, and the shapes of published models.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "frugal/error.h"
#include "frugal/synth.h"

namespace frugal {

namespace {

struct FormatName {
  std::string_view name;
  TensorType base;
  WeightFormat::Mix mix;
  uint32_t llama_file_type;  // llama_ftype in llama.cpp's include/llama.h
};

// The pure K types carry the file type of the mix llama-quantize uses for
// that name ("Q4_K" means Q4_K_M there).
constexpr FormatName kFormats[] = {
    {"F32", TensorType::F32, WeightFormat::Mix::Pure, 0},
    {"F16", TensorType::F16, WeightFormat::Mix::Pure, 1},
    {"BF16", TensorType::BF16, WeightFormat::Mix::Pure, 32},
    {"Q8_0", TensorType::Q8_0, WeightFormat::Mix::Pure, 7},
    {"Q4_0", TensorType::Q4_0, WeightFormat::Mix::Pure, 2},
    {"Q4_1", TensorType::Q4_1, WeightFormat::Mix::Pure, 3},
    {"Q5_0", TensorType::Q5_0, WeightFormat::Mix::Pure, 8},
    {"Q5_1", TensorType::Q5_1, WeightFormat::Mix::Pure, 9},
    {"Q2_K", TensorType::Q2_K, WeightFormat::Mix::Pure, 10},
    {"Q3_K", TensorType::Q3_K, WeightFormat::Mix::Pure, 12},
    {"Q4_K", TensorType::Q4_K, WeightFormat::Mix::Pure, 15},
    {"Q5_K", TensorType::Q5_K, WeightFormat::Mix::Pure, 17},
    {"Q6_K", TensorType::Q6_K, WeightFormat::Mix::Pure, 18},
    {"Q4_K_S", TensorType::Q4_K, WeightFormat::Mix::Q4_K_S, 14},
    {"Q4_K_M", TensorType::Q4_K, WeightFormat::Mix::Q4_K_M, 15},
    {"Q5_K_S", TensorType::Q5_K, WeightFormat::Mix::Q5_K_S, 16},
    {"Q5_K_M", TensorType::Q5_K, WeightFormat::Mix::Q5_K_M, 17},
};

constexpr std::pair<uint32_t, std::string_view> kLlamaFileTypes[] = {
    {0, "F32"},     {1, "F16"},     {2, "Q4_0"},    {3, "Q4_1"},    {7, "Q8_0"},    {8, "Q5_0"},
    {9, "Q5_1"},    {10, "Q2_K"},   {11, "Q3_K_S"}, {12, "Q3_K_M"}, {13, "Q3_K_L"}, {14, "Q4_K_S"},
    {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"}, {18, "Q6_K"},   {32, "BF16"},
};

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// Layer index of "blk.N.xxx"; -1 for tensors outside the layers.
int64_t layer_of(std::string_view name) {
  if (!name.starts_with("blk.")) return -1;
  int64_t layer = -1;
  const char* first = name.data() + 4;
  const auto [end, error] = std::from_chars(first, name.data() + name.size(), layer);
  return error == std::errc{} && end != first ? layer : -1;
}

// llama-quantize's choice of layers that get more bits: the first and last
// eighth, and every third layer between.
bool use_more_bits(int64_t layer, int64_t layers) {
  return layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;
}

bool divides(TensorType type, int64_t row_length) {
  return row_length % static_cast<int64_t>(tensor_type_traits(type).block_elements) == 0;
}

}  // namespace

WeightFormat WeightFormat::parse(std::string_view name) {
  const std::string wanted = upper(name);
  for (const auto& f : kFormats) {
    if (f.name == wanted) return WeightFormat{std::string(f.name), f.base, f.mix};
  }
  throw Error(fmt::format("unknown weight type '{}'; use one of {}", name, fmt::join(names(), ", ")));
}

WeightFormat WeightFormat::pure(TensorType type) {
  return WeightFormat{std::string(tensor_type_name(type)), type, Mix::Pure};
}

std::vector<std::string> WeightFormat::names() {
  std::vector<std::string> out;
  for (const auto& f : kFormats) out.emplace_back(f.name);
  return out;
}

uint32_t WeightFormat::llama_file_type() const {
  for (const auto& f : kFormats) {
    if (f.base == base && f.mix == mix) return f.llama_file_type;
  }
  return 0;
}

std::string_view llama_file_type_name(uint32_t file_type) {
  for (const auto& [value, name] : kLlamaFileTypes) {
    if (value == file_type) return name;
  }
  return "";
}

TensorType weight_tensor_type(const WeightFormat& format, std::string_view tensor_name, int64_t row_length,
                              int64_t layer_count, bool tied_embeddings) {
  using Mix = WeightFormat::Mix;
  TensorType type = format.base;
  const int64_t layer = layer_of(tensor_name);
  const bool is_output = tensor_name == "output.weight" || (tied_embeddings && tensor_name == "token_embd.weight");
  const bool quantized = type != TensorType::F32 && type != TensorType::F16 && type != TensorType::BF16;
  if (quantized && is_output) {
    // As llama-quantize does for every quantized type (unless --pure): the
    // output matrix decides every token, so it gets Q6_K, or Q8_0 where its
    // rows are not whole 256-element super-blocks.
    if (row_length % 256 != 0) {
      type = TensorType::Q8_0;
    } else if (type != TensorType::Q8_0) {
      type = TensorType::Q6_K;
    }
  } else if (format.mix != Mix::Pure) {
    if (tensor_name.find("attn_v.weight") != std::string_view::npos) {
      if ((format.mix == Mix::Q4_K_M || format.mix == Mix::Q5_K_M) && use_more_bits(layer, layer_count)) {
        type = TensorType::Q6_K;
      } else if (format.mix == Mix::Q4_K_S && layer < 4) {
        type = TensorType::Q5_K;
      }
    } else if (tensor_name.find("ffn_down") != std::string_view::npos) {
      if ((format.mix == Mix::Q4_K_M || format.mix == Mix::Q5_K_M) && use_more_bits(layer, layer_count)) {
        type = TensorType::Q6_K;
      } else if (format.mix == Mix::Q4_K_S && layer < layer_count / 8) {
        type = TensorType::Q5_K;
      }
    }
  }
  if (divides(type, row_length)) return type;
  // llama-quantize's fallback for rows that are not whole blocks.
  switch (type) {
    case TensorType::Q2_K:
    case TensorType::Q3_K: type = TensorType::Q4_0; break;
    case TensorType::Q4_K: type = TensorType::Q5_0; break;
    case TensorType::Q5_K: type = TensorType::Q5_1; break;
    case TensorType::Q6_K: type = TensorType::Q8_0; break;
    default: type = TensorType::F16; break;
  }
  return divides(type, row_length) ? type : TensorType::F16;
}

namespace {

// Dimensions from each model's config.json on Hugging Face.
ModelShape smollm2_135m() {
  ModelShape s;
  s.name = "smollm2-135m";
  s.architecture = "llama";
  s.embedding = 576;
  s.layers = 30;
  s.heads = 9;
  s.kv_heads = 3;
  s.feed_forward = 1536;
  s.context = 8192;
  s.rms_epsilon = 1e-5f;
  s.rope_base = 100000.0f;
  return s;
}

ModelShape qwen25_05b() {
  ModelShape s;
  s.name = "qwen2.5-0.5b";
  s.architecture = "qwen2";
  s.embedding = 896;
  s.layers = 24;
  s.heads = 14;
  s.kv_heads = 2;
  s.feed_forward = 4864;
  s.context = 32768;
  s.rms_epsilon = 1e-6f;
  s.rope_base = 1000000.0f;
  s.qkv_bias = true;
  return s;
}

ModelShape llama32_1b() {
  ModelShape s;
  s.name = "llama-3.2-1b";
  s.architecture = "llama";
  s.embedding = 2048;
  s.layers = 16;
  s.heads = 32;
  s.kv_heads = 8;
  s.head_size = 64;
  s.feed_forward = 8192;
  s.context = 131072;
  s.rms_epsilon = 1e-5f;
  s.rope_base = 500000.0f;
  // rope_scaling {rope_type: llama3, factor: 32, low 1, high 4, original 8192}
  s.rope_frequency_factors = llama3_rope_frequency_factors(64, s.rope_base, 32.0f, 1.0f, 4.0f, 8192);
  return s;
}

ModelShape qwen3_06b() {
  ModelShape s;
  s.name = "qwen3-0.6b";
  s.architecture = "qwen3";
  s.embedding = 1024;
  s.layers = 28;
  s.heads = 16;
  s.kv_heads = 8;
  s.head_size = 128;
  s.feed_forward = 3072;
  s.context = 40960;
  s.rms_epsilon = 1e-6f;
  s.rope_base = 1000000.0f;
  s.qk_norm = true;
  return s;
}

constexpr std::pair<std::string_view, ModelShape (*)()> kShapes[] = {
    {"smollm2-135m", smollm2_135m},
    {"qwen2.5-0.5b", qwen25_05b},
    {"llama-3.2-1b", llama32_1b},
    {"qwen3-0.6b", qwen3_06b},
};

}  // namespace

ModelShape named_model_shape(std::string_view name) {
  std::string wanted(name);
  for (char& c : wanted) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& [shape_name, make] : kShapes) {
    if (shape_name == wanted) return make();
  }
  throw Error(fmt::format("unknown model shape '{}'; use one of {}, or give the dimensions (--embedding, "
                          "--layers, --heads, --kv-heads, --ffn)",
                          name, fmt::join(named_model_shape_names(), ", ")));
}

std::vector<std::string> named_model_shape_names() {
  std::vector<std::string> out;
  for (const auto& [name, make] : kShapes) out.emplace_back(name);
  return out;
}

void ModelShape::check() const {
  if (architecture != "llama" && architecture != "qwen2" && architecture != "qwen3" && architecture != "bert") {
    throw Error(fmt::format("architecture '{}' is not supported; use llama, qwen2, qwen3 or bert", architecture));
  }
  for (const auto& [what, value] : {std::pair{"vocabulary size", vocab}, {"embedding size", embedding},
                                    {"layer count", layers}, {"head count", heads}, {"key/value head count", kv_heads},
                                    {"feed-forward size", feed_forward}, {"context length", context}}) {
    if (value <= 0) throw Error(fmt::format("{} is {}; it must be positive", what, value));
  }
  if (head_size < 0) throw Error(fmt::format("head size is {}; it must be positive", head_size));
  if (heads % kv_heads != 0) {
    throw Error(fmt::format("{} heads cannot share {} key/value heads: the head count must be a multiple of the "
                            "key/value head count",
                            heads, kv_heads));
  }
  if (head_size == 0 && embedding % heads != 0) {
    throw Error(fmt::format("embedding size {} is not divisible by {} heads; change one, or give the head size",
                            embedding, heads));
  }
  if (resolved_head_size() % 2 != 0) {
    throw Error(fmt::format("head size {} is odd; rotary embeddings need an even head size", resolved_head_size()));
  }
  if (!(rms_epsilon > 0) || !(rope_base > 0) || !std::isfinite(rope_base)) {
    throw Error(fmt::format("rms epsilon {} and rope base {} must be positive", rms_epsilon, rope_base));
  }
  if (rope_scaling != "none" && rope_scaling != "linear" && rope_scaling != "yarn" && rope_scaling != "llama3") {
    throw Error(fmt::format("rope scaling '{}' is not supported; use none, linear, yarn or llama3", rope_scaling));
  }
  if (!rope_frequency_factors.empty() &&
      static_cast<int64_t>(rope_frequency_factors.size()) != resolved_head_size() / 2) {
    throw Error(fmt::format("{} rope frequency factors given for a head size of {}; expected {}",
                            rope_frequency_factors.size(), resolved_head_size(), resolved_head_size() / 2));
  }
}

}  // namespace frugal
