#include "cli/model_options.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <vector>

#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/arguments.h"
#include "frugal/chat.h"
#include "frugal/error.h"
#include "frugal/generate.h"
#include "frugal/json_schema.h"

namespace frugal::cli {

void add_model_arguments(CLI::App& command, ModelArguments& args, bool demo_by_default) {
  auto* model = command.add_option("-m,--model", args.model_path,
                                    demo_by_default ? "GGUF model file (default: the built-in demo model)"
                                                    : "GGUF model file");
  model->check(CLI::ExistingFile);
  if (!demo_by_default) model->required();
  command.add_option("-t,--threads", args.threads, "CPU threads (default: the CPUs this process may use)")->check(integer_in(0, 1024));
  command.add_flag("--pin-threads", args.pin_threads, "bind compute thread i to CPU i");
  command.add_option("-c,--ctx-size", args.context,
                     "context size in tokens (default: the model's; run, logits and beam use at most 4096)")
      ->check(integer_in(0, int64_t{1} << 24));
  command.add_option("--cache-type", args.cache_type,
                     "KV cache type (keys and values; default f16, as llama.cpp): " + kv_precision_names())
      ->check(kv_type_validator());
  command.add_option("--cache-type-k", args.cache_type_k,
                     "type of the cached keys (llama.cpp's -ctk, also accepted): " + kv_precision_names())
      ->check(kv_type_validator());
  command.add_option("--cache-type-v", args.cache_type_v,
                     "type of the cached values (llama.cpp's -ctv, also accepted): " + kv_precision_names())
      ->check(kv_type_validator());
  command.add_option("--repack", args.repack, kRepackHelp)->check(CLI::IsMember({"auto", "on", "off"}));
  command.add_option("--lora", args.lora, "LoRA adapter (llama.cpp's GGUF adapter) applied unmerged; repeatable")
      ->check(CLI::ExistingFile);
  command.add_option("--lora-scaled", args.lora_scaled, "LoRA adapter with a scale (FILE SCALE); repeatable")
      ->type_size(2)
      ->allow_extra_args(false);
}

LoraSpec parse_scaled_lora(const std::string& path, const std::string& scale) {
  if (!std::filesystem::exists(path)) throw Error(fmt::format("--lora-scaled {}: no such file", path));
  size_t used = 0;
  float value = 0;
  try {
    value = std::stof(scale, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != scale.size() || !std::isfinite(value)) {
    throw Error(fmt::format("--lora-scaled {} {}: the scale must be a number", path, scale));
  }
  return {path, value};
}

std::vector<LoraSpec> lora_specs(const ModelArguments& args) {
  std::vector<LoraSpec> specs;
  for (const auto& path : args.lora) specs.push_back({path, 1.0f});
  for (size_t i = 0; i + 1 < args.lora_scaled.size(); i += 2) {
    specs.push_back(parse_scaled_lora(args.lora_scaled[i], args.lora_scaled[i + 1]));
  }
  return specs;
}

KvTypes cache_precision_from_arguments(const ModelArguments& args) {
  // Each checked by kv_type_validator; -ctk / -ctv override --cache-type.
  const std::string keys = args.cache_type_k.empty() ? args.cache_type : args.cache_type_k;
  const std::string values = args.cache_type_v.empty() ? args.cache_type : args.cache_type_v;
  return {*parse_kv_precision(keys), *parse_kv_precision(values)};
}

KvTypesGiven cache_types_given(const CLI::App& command) {
  const bool both = command.count("--cache-type") > 0;
  return {both || command.count("--cache-type-k") > 0, both || command.count("--cache-type-v") > 0};
}

CLI::Validator kv_type_validator() {
  return CLI::Validator(
      [](const std::string& value) {
        return parse_kv_precision(value) ? std::string() : fmt::format("{} is not a KV type ({})", value,
                                                                       kv_precision_names());
      },
      "KV type", "kv_type");
}

WeightRepacking repacking_from_argument(const std::string& value) {
  if (value == "on") return WeightRepacking::On;
  if (value == "off") return WeightRepacking::Off;
  if (value == "auto") return WeightRepacking::Auto;
  throw Error(fmt::format("--repack {}: expected auto, on or off", value));
}

std::string demo_model_path() {
  if (const char* env = std::getenv("FRUGAL_DEFAULT_MODEL"); env && *env) {
    if (!std::filesystem::exists(env)) {
      throw Error(fmt::format("FRUGAL_DEFAULT_MODEL names {}, which does not exist", env));
    }
    return env;
  }
  constexpr const char* kName = "frugal-demo-qa-q8_0.gguf";
  std::error_code error;
  const auto executable = std::filesystem::read_symlink("/proc/self/exe", error);
  std::vector<std::filesystem::path> tried;
  if (!error) {
    const auto dir = executable.parent_path();
    // build/frugal -> models/ of the source tree; bin/frugal -> share/frugal/models/
    tried = {dir.parent_path() / "models" / kName, dir / "models" / kName,
             dir.parent_path() / "share" / "frugal" / "models" / kName};
  }
  for (const auto& path : tried) {
    if (std::filesystem::exists(path, error)) return path.lexically_normal().string();
  }
  std::string places;
  for (const auto& path : tried) places += "\n  " + path.lexically_normal().string();
  throw Error(fmt::format("no model given (-m) and the built-in demo model {} is not in any of:{}\n"
                          "pass -m MODEL.gguf, or set FRUGAL_DEFAULT_MODEL", kName, places));
}

void warn_if_more_threads_than_cpus(size_t threads) {
  if (const size_t cpus = available_cpus(); threads > cpus) {
    fmt::print(stderr, "warning: -t {} is more threads than the {} CPU{} this process may use; they will wait for "
                       "each other (leave -t out to use {})\n",
               threads, cpus, cpus == 1 ? "" : "s", cpus);
  }
}

LoadedModel load_model(const ModelArguments& args) {
  LoadedModel loaded;
  loaded.cache_precision = cache_precision_from_arguments(args);  // before the model loads
  ModelOptions options;
  options.threads = static_cast<size_t>(args.threads);
  warn_if_more_threads_than_cpus(options.threads);
  options.pin_threads = args.pin_threads;
  options.repacking = repacking_from_argument(args.repack);
  options.loras = lora_specs(args);
  std::string path = args.model_path;
  if (path.empty()) {
    path = demo_model_path();
    fmt::print(stderr, "using the built-in demo model: {}\n", path);
  }
  loaded.model = Model::load(path, options);
  loaded.tokenizer = Tokenizer::from_gguf(loaded.model->file());
  check_tokenizer_matches(*loaded.model, *loaded.tokenizer);
  const auto& config = loaded.model->config();
  loaded.context = args.context > 0 ? args.context : std::min<int64_t>(config.training_context, 4096);
  return loaded;
}

void add_generation_arguments(CLI::App& command, GenerationArguments& args) {
  command.add_option("-n,--n-predict", args.max_tokens, "tokens to generate (-1: until the context is full)")
      ->check(integer_in(-1, 1 << 24))
      ->capture_default_str();
  command.add_option("--temp", args.sampling.temperature, "temperature (0: greedy)")
      ->check(number_in(0))
      ->capture_default_str();
  command.add_option("--top-k", args.sampling.top_k, "top-k sampling (0: off)")
      ->check(integer_in(0, std::numeric_limits<int32_t>::max()))
      ->capture_default_str();
  command.add_option("--top-p", args.sampling.top_p, "top-p sampling (1: off)")
      ->check(number_in(0, 1))
      ->capture_default_str();
  command.add_option("--min-p", args.sampling.min_p, "min-p sampling (0: off)")
      ->check(number_in(0, 1))
      ->capture_default_str();
  command.add_option("--repeat-penalty", args.sampling.repeat_penalty, "repetition penalty (1: off)")
      ->check(number_in(0, std::numeric_limits<float>::max(), true))
      ->capture_default_str();
  command.add_option("--repeat-last-n", args.sampling.repeat_last_n,
                     "tokens the penalty looks back over (0: off, -1: the whole context)")
      ->check(integer_in(-1, std::numeric_limits<int32_t>::max()))
      ->capture_default_str();
  command.add_option("-s,--seed", args.seed, "random seed, 0 to 4294967294 (-1: a random one, printed on stderr)")
      ->check(integer_in(-1, SamplingParams::kRandomSeed))
      ->capture_default_str();
  command.add_option("-r,--reverse-prompt,--stop", args.stop, "stop when this text is generated (repeatable)");
  command.add_flag("--ignore-eos", args.ignore_eos, "never end on an end-of-generation token (run to -n or a stop)");
  command.add_option("--thinking", args.thinking, "thinking models: on, off, or auto (the model's default)")
      ->check(CLI::IsMember({"on", "off", "auto"}))
      ->capture_default_str();
  command.add_option("--reasoning-budget", args.reasoning_budget,
                     "thinking tokens allowed; then frugal ends the thinking and the model answers (0: no thinking, "
                     "-1: no limit)")
      ->check(integer_in(-1, 1 << 24))
      ->capture_default_str();
  command.add_option("--reasoning-exit", args.reasoning_exit,
                     "end thinking early when a probed answer is confident: confidence:T, min-confidence:T "
                     "(optionally ,every:N ,max:N) or off")
      ->capture_default_str();
  command.add_flag("--hide-thinking", args.hide_thinking, "print only the answer of a thinking model");
  auto* grammar =
      command.add_option("--grammar", args.grammar, "constrain the answer to a GBNF grammar (llama.cpp's syntax)");
  auto* grammar_file =
      command.add_option("--grammar-file", args.grammar_file, "constrain the answer to the GBNF grammar in FILE")
          ->check(CLI::ExistingFile);
  auto* schema = command.add_option("-j,--json-schema", args.json_schema,
                                    "constrain the answer to JSON a JSON schema accepts (the schema, or @FILE)");
  grammar->excludes(grammar_file)->excludes(schema);
  grammar_file->excludes(schema);
}

std::shared_ptr<const Grammar> grammar_from_arguments(const GenerationArguments& args) {
  if (!args.grammar.empty()) return Grammar::parse(args.grammar);
  if (!args.grammar_file.empty()) return Grammar::parse(read_text_file(args.grammar_file, "grammar"));
  if (args.json_schema.empty()) return nullptr;
  const std::string text =
      args.json_schema.starts_with("@") ? read_text_file(args.json_schema.substr(1), "JSON schema") : args.json_schema;
  nlohmann::ordered_json schema;  // keeps the order of properties
  try {
    schema = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("--json-schema: not valid JSON ({})", e.what()));
  }
  return Grammar::parse(json_schema_to_gbnf(schema));
}

ThinkingOptions thinking_options(const GenerationArguments& args, const Model& model, const Tokenizer& tokenizer) {
  ThinkingSettings settings;
  if (args.thinking != "auto") settings.enabled = args.thinking == "on";
  settings.budget = args.reasoning_budget;
  settings.exit = parse_early_exit(args.reasoning_exit);
  if (settings.enabled == false && (settings.budget > 0 || settings.exit.enabled())) {
    throw Error("--thinking off leaves nothing for --reasoning-budget or --reasoning-exit to act on");
  }
  const std::string jinja = model.file().get_string_or("tokenizer.chat_template", "");
  return make_thinking_options(detect_thinking_format(jinja), settings, tokenizer);
}

AnswerPrinter::AnswerPrinter(bool hide_thinking) : hide_(hide_thinking), terminal_(::isatty(STDOUT_FILENO) != 0) {}

bool AnswerPrinter::thinking(std::string_view text) {
  if (hide_) return true;
  if (!in_thinking_) fmt::print("{}", terminal_ ? "\x1b[2m" : "<think>\n");
  in_thinking_ = true;
  fmt::print("{}", text);
  std::fflush(stdout);
  return true;
}

bool AnswerPrinter::answer(std::string_view text) {
  close_thinking();
  fmt::print("{}", text);
  std::fflush(stdout);
  return true;
}

void AnswerPrinter::end() { close_thinking(); }

std::string thinking_summary(const GenerationResult& result) {
  std::string out;
  if (result.thinking_tokens > 0) {
    out += fmt::format(" | thinking {} tokens{}", result.thinking_tokens,
                       result.thinking_cut ? " (cut at the budget)" : result.early_exit ? " (ended early)" : "");
  }
  if (result.probes > 0) out += fmt::format(" | {} probes, {} tokens", result.probes, result.probe_tokens);
  return out;
}

void AnswerPrinter::close_thinking() {
  if (!in_thinking_) return;
  in_thinking_ = false;
  fmt::print("{}", terminal_ ? "\x1b[0m\n\n" : "\n</think>\n\n");
  std::fflush(stdout);
}

GenerationOptions generation_options(const GenerationArguments& args, bool announce_seed) {
  GenerationOptions options;
  options.max_tokens = args.max_tokens;
  options.sampling = args.sampling;
  options.stop_strings = args.stop;
  options.ignore_eos = args.ignore_eos;
  options.grammar = grammar_from_arguments(args);
  if (args.seed >= 0 && static_cast<uint64_t>(args.seed) != SamplingParams::kRandomSeed) {
    options.sampling.seed = static_cast<uint64_t>(args.seed);
  } else if (options.sampling.temperature > 0) {
    // Drawn here rather than by the sampler, so it can be printed before
    // the answer and fits -s (32 bits, kRandomSeed excluded).
    std::random_device device;
    uint64_t seed = device();
    while (seed == SamplingParams::kRandomSeed) seed = device();
    options.sampling.seed = seed;
    if (announce_seed) fmt::print(stderr, "seed: {}\n", seed);
  }
  return options;
}

ChatFormat resolve_chat_format(const Model& model, const std::string& override_name) {
  if (!override_name.empty()) {
    if (auto format = chat_format_from_name(override_name)) return *format;
    std::string names;
    for (auto name : chat_format_names()) names += fmt::format("{}{}", names.empty() ? "" : ", ", name);
    throw Error(fmt::format("unknown chat template '{}'; choose one of: {}", override_name, names));
  }
  const std::string jinja = model.file().get_string_or("tokenizer.chat_template", "");
  if (jinja.empty()) {
    throw UnsupportedError(fmt::format("{} has no chat template (tokenizer.chat_template); pass --chat-template NAME",
                                       model.file().source_name()));
  }
  return detect_chat_format(jinja);
}

std::string unescape_newlines(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == 'n') {
      out += '\n';
      ++i;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string read_text_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot read the {}", path, what));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace frugal::cli
