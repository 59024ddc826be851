// Options shared by the commands that load a model (-m, -t, -c, cache type),
// and the helpers that turn them into a loaded model and tokenizer.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "frugal/chat.h"
#include "frugal/generate.h"
#include "frugal/model.h"
#include "frugal/tokenizer.h"

namespace frugal::cli {

struct ModelArguments {
  std::string model_path;
  int threads = 0;          // 0: all cores
  bool pin_threads = false;
  int64_t context = 0;      // 0: the model's training context, at most 4096
  // F16 halves what decode reads per token (docs/kv-cache-types.md); the
  // library's structs keep F32, which the reference tests compare with.
  std::string cache_type = "f16";
  std::string cache_type_k, cache_type_v;  // llama.cpp's -ctk / -ctv; empty: --cache-type
  std::string repack = "auto";
  std::vector<std::string> lora;                              // --lora FILE (scale 1)
  std::vector<std::string> lora_scaled;  // --lora-scaled FILE SCALE, flattened
};

// FILE SCALE of --lora-scaled; Error for a missing file or a scale that is no number.
LoraSpec parse_scaled_lora(const std::string& path, const std::string& scale);
// The adapters --lora and then --lora-scaled name.
std::vector<LoraSpec> lora_specs(const ModelArguments& args);

// The KV types -ctk / -ctv / --cache-type ask for (keys and values may
// differ).
KvTypes cache_precision_from_arguments(const ModelArguments& args);
// Which halves of the KV type the command line set: --cache-type both,
// --cache-type-k / -ctk the keys, --cache-type-v / -ctv the values.
struct KvTypesGiven {
  bool keys = false, values = false;
};
KvTypesGiven cache_types_given(const CLI::App& command);
// Accepts the spellings of parse_kv_precision (f32, f16, q8_0, q4_0, q4_h).
CLI::Validator kv_type_validator();

// --repack's values (auto, on, off) as the option they stand for.
WeightRepacking repacking_from_argument(const std::string& value);
inline constexpr const char* kRepackHelp =
    "repack quantized weights at load for this CPU's SIMD width: auto (where timing says it is faster), on, off";

// With `demo_by_default`, -m may be left out: the built-in demo model is
// used (demo_model_path()) and stderr says so.
void add_model_arguments(CLI::App& command, ModelArguments& args, bool demo_by_default = false);

// Where the built-in demo model is: $FRUGAL_DEFAULT_MODEL if set, else
// models/frugal-demo-qa-q8_0.gguf beside the build folder or the install
// prefix of this executable. Throws Error listing the places tried.
std::string demo_model_path();

struct LoadedModel {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  int64_t context = 0;
  KvTypes cache_precision = KvPrecision::F32;
};

LoadedModel load_model(const ModelArguments& args);

// Warns on stderr when `threads` is more than the CPUs this process may use
// (they would only wait for each other).
void warn_if_more_threads_than_cpus(size_t threads);

// Sampling and stopping options shared by `run` and `ask` (llama.cpp names).
struct GenerationArguments {
  int32_t max_tokens = 256;
  SamplingParams sampling;  // its seed is set from `seed` by generation_options
  int64_t seed = -1;        // -1 (or SamplingParams::kRandomSeed): a random one, as in llama.cpp
  std::vector<std::string> stop;
  bool ignore_eos = false;
  // Thinking models (docs/thinking.md).
  std::string thinking = "auto";  // on, off, auto (the model's default)
  int32_t reasoning_budget = -1;
  std::string reasoning_exit = "off";
  bool hide_thinking = false;
  // Structured output (docs/structured-output.md): one of them.
  std::string grammar, grammar_file, json_schema;
};

// Every value is range-checked at parse time (the server's ranges, without
// its cap on the temperature).
void add_generation_arguments(CLI::App& command, GenerationArguments& args);
// A random seed is drawn here and, when sampling uses it and
// `announce_seed`, printed on stderr ("seed: N") so the run can be repeated
// with -s N.
GenerationOptions generation_options(const GenerationArguments& args, bool announce_seed);

// The grammar --grammar, --grammar-file or --json-schema gives (nullptr: none).
std::shared_ptr<const Grammar> grammar_from_arguments(const GenerationArguments& args);

// What the thinking arguments ask of `model` (parsed out of the answer for
// a thinking model; Error when a model that does not think is asked to).
ThinkingOptions thinking_options(const GenerationArguments& args, const Model& model, const Tokenizer& tokenizer);

// Prints a thinking model's answer: the thinking dimmed on a terminal,
// between <think> and </think> otherwise, or not at all (--hide-thinking);
// then the answer.
class AnswerPrinter {
 public:
  explicit AnswerPrinter(bool hide_thinking);
  bool thinking(std::string_view text);
  bool answer(std::string_view text);
  void end();  // closes an unfinished thinking block

 private:
  void close_thinking();
  bool hide_, terminal_;
  bool in_thinking_ = false;
};

// " | thinking N tokens ..." for a run's summary line; empty when the
// answer did not think.
std::string thinking_summary(const GenerationResult& result);

// The chat format: `override_name` when given, else detected from the
// model's tokenizer.chat_template. Throws Error naming the choices.
ChatFormat resolve_chat_format(const Model& model, const std::string& override_name);

// Replaces the two-character sequence "\n" with a newline (prompt files and
// -p use it, as llama.cpp's -e does).
std::string unescape_newlines(const std::string& text);

// The whole file; throws Error "PATH: cannot read the WHAT" when it cannot
// be opened (prompt files, texts to measure or calibrate on).
std::string read_text_file(const std::string& path, const std::string& what);

}  // namespace frugal::cli
