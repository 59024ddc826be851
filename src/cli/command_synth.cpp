// `frugal synth`: a random-weight GGUF model of a real shape (or custom
// dimensions) and weight format, with the vocabulary of a given GGUF file:
// benchmark material without downloading models.
#include <chrono>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/arguments.h"
#include "cli/commands.h"
#include "frugal/error.h"
#include "frugal/gguf.h"
#include "frugal/synth.h"

namespace frugal::cli {

namespace {

struct SynthArguments {
  std::string shape;
  std::string type = "Q8_0";
  std::string vocab_path;
  std::string output_path;
  uint64_t seed = 1;
  int threads = 0;
  // Custom dimensions; each applies only when given (see `given`).
  int64_t embedding = 0, layers = 0, heads = 0, kv_heads = 0, feed_forward = 0, head_size = 0, context = 0;
  std::string architecture;
  float rope_base = 0.0f;
  float rms_epsilon = 0.0f;
  bool tied = true;
};

struct GivenOptions {
  CLI::Option *embedding, *layers, *heads, *kv_heads, *feed_forward, *head_size, *context, *architecture, *rope_base,
      *rms_epsilon, *tied;
};

bool given(const CLI::Option* option) { return option->count() > 0; }

ModelShape resolve_shape(const SynthArguments& args, const GivenOptions& opt) {
  ModelShape shape;
  if (!args.shape.empty()) {
    shape = named_model_shape(args.shape);
  } else if (!given(opt.embedding) || !given(opt.layers) || !given(opt.heads) || !given(opt.feed_forward)) {
    throw Error(fmt::format("give --shape NAME ({}) or the dimensions --embedding, --layers, --heads and --ffn",
                            fmt::join(named_model_shape_names(), ", ")));
  } else {
    shape.name = "custom";
  }
  if (given(opt.embedding)) shape.embedding = args.embedding;
  if (given(opt.layers)) shape.layers = args.layers;
  if (given(opt.heads)) {
    shape.heads = args.heads;
    if (!given(opt.kv_heads) && args.shape.empty()) shape.kv_heads = args.heads;
  }
  if (given(opt.kv_heads)) shape.kv_heads = args.kv_heads;
  if (given(opt.feed_forward)) shape.feed_forward = args.feed_forward;
  if (given(opt.head_size)) shape.head_size = args.head_size;
  if (given(opt.context)) shape.context = args.context;
  if (given(opt.rope_base)) shape.rope_base = args.rope_base;
  if (given(opt.rms_epsilon)) shape.rms_epsilon = args.rms_epsilon;
  if (given(opt.tied)) shape.tied_embeddings = args.tied;
  if (given(opt.architecture)) {
    shape.architecture = args.architecture;
    shape.qkv_bias = args.architecture == "qwen2";
    shape.qk_norm = args.architecture == "qwen3";
  }
  // Llama 3 frequency factors belong to the named head size.
  if (!shape.rope_frequency_factors.empty() &&
      static_cast<int64_t>(shape.rope_frequency_factors.size()) * 2 != shape.resolved_head_size()) {
    throw Error(fmt::format("shape '{}' has Llama 3 rope factors for head size {}; keep --head-size and the "
                            "embedding/heads ratio at that size",
                            shape.name, shape.rope_frequency_factors.size() * 2));
  }
  return shape;
}

std::string human_count(uint64_t n) {
  return n >= 1'000'000'000 ? fmt::format("{:.2f} B", n / 1e9) : fmt::format("{:.2f} M", n / 1e6);
}

void synth(const SynthArguments& args, const GivenOptions& opt) {
  SyntheticModelSpec spec;
  spec.shape = resolve_shape(args, opt);
  spec.format = WeightFormat::parse(args.type);
  spec.weights.seed = args.seed;
  spec.threads = static_cast<size_t>(args.threads);
  {
    const GgufFile vocab = GgufFile::open(args.vocab_path);
    spec.shape.vocab = tokenizer_token_count(vocab);
    spec.extra_metadata = tokenizer_metadata(vocab);
  }
  const auto start = std::chrono::steady_clock::now();
  const SyntheticModelSummary summary = write_synthetic_model(spec, args.output_path);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string types;
  for (const auto& [type, count] : summary.tensor_types) {
    types += fmt::format("{}{} x{}", types.empty() ? "" : ", ", tensor_type_name(type), count);
  }
  fmt::print("{}: {} {} ({}), {} params, {:.2f} MiB, {:.1f} s; tensors {}{}\n", args.output_path, spec.shape.name,
             spec.format.name, spec.shape.architecture, human_count(summary.parameters),
             summary.file_bytes / double(1 << 20), seconds, types,
             summary.fallbacks ? fmt::format("; {} matrices have rows that are not whole {} blocks and use the "
                                             "fallback type",
                                             summary.fallbacks, tensor_type_name(spec.format.base))
                               : "");
}

}  // namespace

void add_synth_command(CLI::App& app) {
  auto args = std::make_shared<SynthArguments>();
  auto opt = std::make_shared<GivenOptions>();
  CLI::App* command = app.add_subcommand("synth", "Write a random-weight GGUF model of a real shape (for benchmarks)");
  // A later option overrides an earlier one, so scripts can append overrides.
  command->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  command->add_option("--shape", args->shape,
                      fmt::format("model shape: {}", fmt::join(named_model_shape_names(), ", ")));
  command->add_option("--type", args->type,
                      fmt::format("weight format of the matrices (default Q8_0): {}",
                                  fmt::join(WeightFormat::names(), ", ")));
  command->add_option("--vocab", args->vocab_path, "GGUF file whose tokenizer.* keys (vocabulary) are copied")
      ->required()
      ->check(CLI::ExistingFile);
  command->add_option("-o,--output", args->output_path, "GGUF file to write")->required();
  command->add_option("-s,--seed", args->seed, "random seed (same seed, same file)");
  command->add_option("-t,--threads", args->threads, "CPU threads (default: all cores)")->check(integer_in(0, 1024));
  const auto dimension = integer_in(1, int64_t{1} << 20);
  opt->embedding = command->add_option("--embedding", args->embedding, "embedding size")->check(dimension);
  opt->layers = command->add_option("--layers", args->layers, "layer (block) count")->check(dimension);
  opt->heads = command->add_option("--heads", args->heads, "attention head count")->check(dimension);
  opt->kv_heads = command->add_option("--kv-heads", args->kv_heads, "key/value head count")->check(dimension);
  opt->feed_forward = command->add_option("--ffn", args->feed_forward, "feed-forward size")->check(dimension);
  opt->head_size = command->add_option("--head-size", args->head_size, "head size (default: embedding / heads)")
                       ->check(dimension);
  opt->context = command->add_option("--context", args->context, "training context length")
                     ->check(integer_in(1, int64_t{1} << 26));
  opt->architecture = command->add_option("--arch", args->architecture, "architecture: llama, qwen2 (Q/K/V biases), "
                                                                        "qwen3 (Q/K norms), bert (an embedding encoder)")
                          ->check(CLI::IsMember({"llama", "qwen2", "qwen3", "bert"}));
  opt->rope_base = command->add_option("--rope-base", args->rope_base, "RoPE frequency base")
                       ->check(CLI::PositiveNumber);
  opt->rms_epsilon = command->add_option("--rms-eps", args->rms_epsilon, "RMSNorm epsilon")->check(CLI::PositiveNumber);
  opt->tied = command->add_flag("--tied,!--untied", args->tied, "output matrix shares the token embeddings (or not)");
  command->callback([args, opt] {
    check_output_path(args->output_path);
    synth(*args, *opt);
  });
}

}  // namespace frugal::cli
