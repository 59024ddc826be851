// `frugal bench`: prefill and decode throughput of a model, printed as
// llama-bench's markdown table (or JSON), plus the weight bytes a decoded
// token streams and the memory bandwidth that achieves.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/arguments.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "frugal/bench.h"
#include "frugal/error.h"

namespace frugal::cli {

namespace {

struct BenchArguments {
  std::string model_path;
  int threads = 0;
  bool pin_threads = false;
  int64_t prompt_tokens = 512;
  int64_t generated_tokens = 128;
  int repetitions = 3;
  int64_t depth = 0;
  std::string cache_type = "f16";
  std::string repack = "auto";
  bool json = false;
};

std::string human_size(uint64_t bytes) {
  if (bytes >= (1ull << 30)) return fmt::format("{:.2f} GiB", bytes / double(1ull << 30));
  return fmt::format("{:.2f} MiB", bytes / double(1ull << 20));
}

std::string human_count(uint64_t n) {
  return n >= 1'000'000'000 ? fmt::format("{:.2f} B", n / 1e9) : fmt::format("{:.2f} M", n / 1e6);
}

std::string model_label(const Model& model, const std::string& path) {
  std::string name = model.file().get_string_or("general.name", "");
  if (name.empty()) name = std::filesystem::path(path).stem().string();
  return fmt::format("{} {}", name, weight_format_label(model.file()));
}

// llama-bench writes a test at depth as "tg128 @ d4096".
std::string at_depth(const BenchmarkResult& r) {
  return r.options.depth > 0 ? fmt::format(" @ d{}", r.options.depth) : "";
}

std::string repacking_line(const RepackingReport& r) {
  if (r.matrices == 0) return "weights as stored (not repacked)";
  return fmt::format("repacked {} matrices ({}, {}) in {:.3f} s at load", r.matrices, r.formats, human_size(r.bytes),
                     r.seconds);
}

void print_table(const BenchmarkResult& r, const std::string& label) {
  fmt::print("| model | size | params | threads | test | t/s | weights/token | GB/s |\n");
  fmt::print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  const std::string common = fmt::format("| {} | {} | {} | {} ", label, human_size(r.model_bytes),
                                         human_count(r.parameters), r.threads);
  if (!r.prefill.tokens_per_second.empty()) {
    fmt::print("{}| pp{}{} | {:.2f} ± {:.2f} | | |\n", common, r.options.prompt_tokens, at_depth(r),
               r.prefill.mean(), r.prefill.stddev());
  }
  if (!r.decode.tokens_per_second.empty()) {
    fmt::print("{}| tg{}{} | {:.2f} ± {:.2f} | {} | {:.2f} |\n", common, r.options.generated_tokens, at_depth(r),
               r.decode.mean(), r.decode.stddev(), human_size(r.weight_bytes_per_token),
               r.decode_bytes_per_second() / 1e9);
  }
}

nlohmann::ordered_json rates(const std::string& test, int64_t n_prompt, int64_t n_gen, const RateSamples& samples) {
  return {{"test", test},
          {"n_prompt", n_prompt},
          {"n_gen", n_gen},
          {"avg_ts", samples.mean()},
          {"stddev_ts", samples.stddev()},
          {"samples_ts", samples.tokens_per_second}};
}

void print_json(const BenchmarkResult& r, const RepackingReport& repacking, const std::string& label,
                const std::string& path) {
  nlohmann::ordered_json tests = nlohmann::ordered_json::array();
  if (!r.prefill.tokens_per_second.empty()) {
    tests.push_back(rates(fmt::format("pp{}", r.options.prompt_tokens), r.options.prompt_tokens, 0, r.prefill));
  }
  if (!r.decode.tokens_per_second.empty()) {
    auto decode = rates(fmt::format("tg{}", r.options.generated_tokens), 0, r.options.generated_tokens, r.decode);
    decode["weight_bytes_per_token"] = r.weight_bytes_per_token;
    decode["avg_gbps"] = r.decode_bytes_per_second() / 1e9;
    tests.push_back(decode);
  }
  const nlohmann::ordered_json out = {{"model", label},
                                      {"file", path},
                                      {"model_size", r.model_bytes},
                                      {"model_n_params", r.parameters},
                                      {"n_threads", r.threads},
                                      {"repetitions", r.options.repetitions},
                                      {"n_depth", r.options.depth},
                                      {"weight_bytes_per_token", r.weight_bytes_per_token},
                                      {"repacked_matrices", repacking.matrices},
                                      {"repacked_formats", repacking.formats},
                                      {"repack_seconds", repacking.seconds},
                                      {"tests", tests}};
  fmt::print("{}\n", out.dump(2));
}

void bench(const BenchArguments& args) {
  ModelOptions model_options;
  model_options.threads = static_cast<size_t>(args.threads);
  warn_if_more_threads_than_cpus(model_options.threads);
  model_options.pin_threads = args.pin_threads;
  model_options.repacking = repacking_from_argument(args.repack);
  const auto model = Model::load(args.model_path, model_options);
  BenchmarkOptions options;
  options.prompt_tokens = args.prompt_tokens;
  options.generated_tokens = args.generated_tokens;
  options.repetitions = args.repetitions;
  options.depth = args.depth;
  options.cache_precision = *parse_kv_precision(args.cache_type);  // checked by kv_type_validator
  // Progress only for a person watching: it would clutter captured output.
  const bool show_progress = ::isatty(STDERR_FILENO);
  const auto result = run_benchmark(*model, options, [&](const std::string& what) {
    if (show_progress) fmt::print(stderr, "\r{:<24}", what);
  });
  if (show_progress) fmt::print(stderr, "\r{:<24}\r", "");
  const std::string label = model_label(*model, args.model_path);
  if (args.json) {
    print_json(result, model->repacking(), label, args.model_path);
  } else {
    print_table(result, label);
    fmt::print("\n{}\n", repacking_line(model->repacking()));
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArguments>();
  CLI::App* command = app.add_subcommand("bench", "Measure prefill and decode speed (tokens/s), like llama-bench");
  command->add_option("-m,--model", args->model_path, "GGUF model file")->required()->check(CLI::ExistingFile);
  command->add_option("-t,--threads", args->threads, "CPU threads (default: the CPUs this process may use)")->check(integer_in(0, 1024));
  command->add_flag("--pin-threads", args->pin_threads, "bind thread i to CPU i");
  command->add_option("--repack", args->repack, kRepackHelp)->check(CLI::IsMember({"auto", "on", "off"}));
  command->add_option("-p,--n-prompt", args->prompt_tokens, "prompt tokens processed in one batch (0: skip)")
      ->check(integer_in(0, int64_t{1} << 20));
  command->add_option("-n,--n-gen", args->generated_tokens, "tokens generated one at a time (0: skip)")
      ->check(integer_in(0, int64_t{1} << 20));
  command->add_option("-r,--repetitions", args->repetitions, "timed runs of each test, after one warm-up")
      ->check(integer_in(1, 1000));
  command->add_option("-d,--n-depth", args->depth,
                      "tokens already in the KV cache before each test (decode at depth, as llama-bench -d)")
      ->check(integer_in(0, int64_t{1} << 20));
  command->add_option("--cache-type", args->cache_type, "KV cache type (default f16): " + kv_precision_names())
      ->check(kv_type_validator());
  command->add_flag("--json", args->json, "print a JSON object instead of the table");
  command->callback([args] { bench(*args); });
}

}  // namespace frugal::cli
