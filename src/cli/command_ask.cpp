// `frugal ask`: answer questions over a knowledge cache (Cache-Augmented
// Generation), or, with --no-cache, from the same prompt prefilled from
// scratch (the baseline the cache is measured against).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "frugal/error.h"
#include "frugal/knowledge_cache.h"

namespace frugal::cli {

namespace {

struct AskArguments {
  ModelArguments model;
  std::string cache;
  std::vector<std::string> docs;  // instead of --kb: build the knowledge in memory
  std::string question;
  GenerationArguments generation;
  bool interactive = false;
  bool no_cache = false;
  bool json = false;
  bool no_verify = false;
  bool quiet = false;
  KvTypesGiven types_given;  // which halves of --cache-type / -ctk / -ctv the command line set
};

double milliseconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

class Asker {
 public:
  Asker(const AskArguments& args, LoadedModel& loaded, KnowledgeCache& cache, double load_ms)
      : args_(args),
        loaded_(loaded),
        cache_(cache),
        load_ms_(load_ms),
        options_(generation_options(args.generation, !args.quiet)) {
    options_.trim_leading_space = true;  // the answer follows "Answer:", so it starts with a space not worth showing
    options_.thinking = thinking_options(args.generation, *loaded.model, *loaded.tokenizer);
  }

  void answer(const std::string& question) {
    const auto start = std::chrono::steady_clock::now();
    AnswerPrinter printer(args_.generation.hide_thinking);
    auto print = [&](std::string_view text) { return args_.json || printer.answer(text); };
    options_.on_thinking = [&](std::string_view text) { return args_.json || printer.thinking(text); };
    GenerationResult result;
    size_t prompt_tokens = 0;
    if (args_.no_cache) {
      // The baseline: the whole prompt (knowledge and question) from scratch.
      const auto tokens = cache_.prompt_tokens(question);
      KvCache fresh(loaded_.model->config(), cache_.cache().capacity(), cache_.types());
      result = generate(*loaded_.model, *loaded_.tokenizer, fresh, tokens, options_, print);
      prompt_tokens = result.prompt_tokens;  // the thinking-off block included
    } else {
      result = cache_.ask(question, options_, print);
      prompt_tokens = result.prompt_tokens;
    }
    printer.end();
    const double total_ms = milliseconds_since(start);
    const double ttft_ms = result.first_token_seconds * 1000.0;
    if (args_.json) {
      nlohmann::json out = {{"question", question},
                            {"answer", result.text},
                            {"tokens", result.tokens.size()},
                            {"token_ids", result.tokens},
                            {"prompt_tokens", prompt_tokens},
                            {"mode", args_.no_cache ? "no-cache" : "cache"},
                            {"cache_type", kv_types_name(cache_.types())},
                            {"stop", stop_reason_name(result.stop_reason)},
                            {"load_ms", load_ms_},
                            {"ttft_ms", ttft_ms},
                            {"total_ms", total_ms}};
      if (args_.generation.sampling.temperature > 0) out["seed"] = result.seed;
      if (options_.thinking.parse) {
        out["thinking"] = result.thinking;
        out["thinking_tokens"] = result.thinking_tokens;
        out["thinking_cut"] = result.thinking_cut;
        out["early_exit"] = result.early_exit;
        out["probes"] = result.probes;
        out["probe_tokens"] = result.probe_tokens;
      }
      fmt::print("{}\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    } else {
      fmt::print("\n");
      if (!args_.quiet) {
        fmt::print(stderr, "[{} | load {:.1f} ms | prompt {} tokens | first token {:.1f} ms | {} tokens in {:.1f} ms "
                           "| stop: {}{}]\n", args_.no_cache ? "no cache" : "cache", load_ms_, prompt_tokens, ttft_ms,
                   result.tokens.size(), total_ms, stop_reason_name(result.stop_reason), thinking_summary(result));
      }
    }
    std::fflush(stdout);
    load_ms_ = 0;  // loading happens once; later questions report 0
  }

 private:
  const AskArguments& args_;
  LoadedModel& loaded_;
  KnowledgeCache& cache_;
  double load_ms_;
  GenerationOptions options_;
};

// --docs: the knowledge is laid out and prefilled here, not saved (for a
// quick question; `frugal kb build` keeps it for the next time).
KnowledgeCache build_in_memory(const AskArguments& args, const LoadedModel& loaded) {
  std::vector<std::filesystem::path> paths(args.docs.begin(), args.docs.end());
  KnowledgeBuildOptions options;
  options.prompt = default_prompt_template(*loaded.model, *loaded.tokenizer);
  options.precision = loaded.cache_precision;
  options.context = args.model.context;
  return KnowledgeCache::build(*loaded.model, *loaded.tokenizer, read_documents(paths), options);
}

void ask(const AskArguments& args) {
  LoadedModel loaded = load_model(args.model);
  const auto start = std::chrono::steady_clock::now();
  KnowledgeLoadOptions load;
  load.verify_checksum = !args.no_verify;
  load.context = args.model.context;
  KnowledgeCache cache = args.docs.empty() ? KnowledgeCache::load(args.cache, *loaded.model, *loaded.tokenizer, load)
                                            : build_in_memory(args, loaded);
  // A saved cache answers in its own type unless one is asked for: then it
  // is converted here (as `frugal kb convert` would), not ignored. Keys and
  // values each: -ctk alone leaves the values as saved.
  if (args.docs.empty()) {
    const KvTypes asked{args.types_given.keys ? loaded.cache_precision.keys : cache.types().keys,
                        args.types_given.values ? loaded.cache_precision.values : cache.types().values};
    if (asked != cache.types()) cache.convert(asked);
  }
  const double load_ms = milliseconds_since(start);
  if (!args.quiet && !args.json) {
    fmt::print(stderr, "{}: {} documents, {} tokens, {} in {:.1f} ms{}\n",
               args.docs.empty() ? args.cache : "knowledge", cache.documents().size(), cache.tokens().size(),
               args.docs.empty() ? "loaded" : "prefilled", load_ms, cache.mapped() ? " (mapped, not copied)" : "");
  }
  Asker asker(args, loaded, cache, load_ms);
  if (!args.question.empty()) asker.answer(args.question);
  if (!args.interactive) return;
  const bool terminal = ::isatty(STDIN_FILENO) != 0;
  std::string line;
  while (true) {
    if (terminal) {
      fmt::print(stderr, "> ");
      std::fflush(stderr);
    }
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    // One bad question (too long for the context...) does not end the session.
    try {
      asker.answer(line);
    } catch (const Error& e) {
      if (args.json) {
        fmt::print("{}\n", nlohmann::json{{"question", line}, {"error", e.what()}}.dump(
                                -1, ' ', false, nlohmann::json::error_handler_t::replace));
      } else {
        fmt::print(stderr, "error: {}\n", e.what());
      }
      std::fflush(stdout);
    }
  }
}

}  // namespace

void add_ask_command(CLI::App& app) {
  auto args = std::make_shared<AskArguments>();
  CLI::App* command = app.add_subcommand("ask", "Answer questions over a knowledge cache (Cache-Augmented Generation)");
  add_model_arguments(*command, args->model, true);
  auto* kb = command->add_option("--kb", args->cache, "knowledge cache (.fkv) from `frugal kb build`")
                 ->check(CLI::ExistingFile);
  // One path per --docs (repeat it for more), so the question that follows
  // is not taken for a path.
  auto* docs = command->add_option("--docs", args->docs,
                                   "or: a folder, .txt/.md or .jsonl file to prefill now, not saved (repeatable)")
                   ->allow_extra_args(false);
  kb->excludes(docs);
  command->add_option("question", args->question, "the question");
  // Questions have one right answer: greedy by default, so an answer can be
  // repeated (run keeps llama.cpp's 0.8).
  args->generation.sampling.temperature = 0.0f;
  add_generation_arguments(*command, args->generation);
  command->add_flag("-i,--interactive", args->interactive, "then read questions from stdin, one per line");
  command->add_flag("--no-cache", args->no_cache,
                    "baseline: prefill the knowledge and question from scratch for every question");
  command->add_flag("--json", args->json, "print one JSON object per answer (answer, tokens, timings)");
  command->add_flag("--no-verify", args->no_verify, "skip the checksum of the cache file (faster load)");
  command->add_flag("-q,--quiet", args->quiet, "no timing summary on stderr");
  command->callback([command, args] {
    args->types_given = cache_types_given(*command);
    if (args->question.empty() && !args->interactive) throw Error("give a question, or --interactive to read them");
    if (args->cache.empty() && args->docs.empty()) throw Error("give the knowledge: --kb FILE.fkv or --docs PATH...");
    ask(*args);
  });
}

}  // namespace frugal::cli
