// `frugal retrofit IN.gguf OUT.gguf --kv-heads N`: fewer key/value heads
// without training (frugal/retrofit.h); says what it saves.
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "cli/arguments.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "frugal/error.h"
#include "frugal/gguf.h"
#include "frugal/retrofit.h"
#include "frugal/tokenizer.h"

namespace frugal::cli {

namespace {

struct RetrofitArguments {
  std::string input, output;
  int64_t kv_heads = 0;
  std::string merge = "aligned";
  std::string calibration;
  int64_t calibration_tokens = 4096;
  int threads = 0;
};

void run(const RetrofitArguments& args) {
  RetrofitOptions options;
  options.kv_heads = args.kv_heads;
  options.merge = args.merge == "mean" ? HeadMerge::Mean : HeadMerge::Aligned;
  options.threads = static_cast<size_t>(args.threads);
  if (options.merge == HeadMerge::Aligned) {
    if (args.calibration.empty()) {
      throw Error("--merge aligned measures the heads on a text: give it with --calibration FILE (a few thousand "
                  "tokens like the text the model will see), or use --merge mean");
    }
    const std::string text = read_text_file(args.calibration, "calibration text");
    const GgufFile file = GgufFile::open(args.input);
    options.calibration = Tokenizer::from_gguf(file)->encode(text, true, false);
    if (static_cast<int64_t>(options.calibration.size()) > args.calibration_tokens) {
      options.calibration.resize(static_cast<size_t>(args.calibration_tokens));
    }
  }
  const RetrofitReport report = retrofit_kv_heads(args.input, args.output, options);
  fmt::print(stderr, "{}: {} KV heads -> {} ({} merge{}), KV cache {} -> {} bytes per token in F32 ({:.2f}x), {:.1f} s\n",
             args.output, report.kv_heads_before, report.kv_heads_after, args.merge,
             options.merge == HeadMerge::Aligned ? fmt::format(" on {} calibration tokens", options.calibration.size())
                                                 : "",
             report.kv_bytes_per_token_before, report.kv_bytes_per_token_after,
             static_cast<double>(report.kv_bytes_per_token_after) / static_cast<double>(report.kv_bytes_per_token_before),
             report.seconds);
  if (!report.groups.empty()) {
    std::string first;
    for (const auto& group : report.groups.front()) first += fmt::format("({}) ", fmt::join(group, " "));
    fmt::print(stderr, "heads merged in layer 0: {}\n", first);
  }
}

}  // namespace

void add_retrofit_command(CLI::App& app) {
  auto args = std::make_shared<RetrofitArguments>();
  CLI::App* command = app.add_subcommand("retrofit", "Rewrite a model with fewer key/value heads, without training");
  command->add_option("input", args->input, "the model (GGUF)")->required()->check(CLI::ExistingFile);
  command->add_option("output", args->output, "the retrofitted model to write")->required();
  command->add_option("--kv-heads", args->kv_heads, "key/value heads per layer afterwards (divides the model's)")
      ->required()
      ->check(integer_in(1, 4096));
  command->add_option("--merge", args->merge,
                      "mean (consecutive heads averaged) or aligned (heads grouped by likeness and aligned on a "
                      "calibration text before averaging)")
      ->check(CLI::IsMember({"mean", "aligned"}))
      ->capture_default_str();
  command->add_option("--calibration", args->calibration, "text the aligned merge measures the heads on")
      ->check(CLI::ExistingFile);
  command->add_option("--calibration-tokens", args->calibration_tokens, "at most this many of its tokens")
      ->check(integer_in(2, 1 << 20))
      ->capture_default_str();
  command->add_option("-t,--threads", args->threads, "CPU threads (default: the CPUs this process may use)")
      ->check(integer_in(0, 1024));
  command->callback([args] { run(*args); });
}

}  // namespace frugal::cli
