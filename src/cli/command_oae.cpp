// `frugal oae run`: the overhead-aware efficiency benchmark (docs/oae.md).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <sstream>

#include <fmt/format.h>

#include "cli/arguments.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "frugal/error.h"
#include "frugal/knowledge_cache.h"
#include "frugal/oae.h"

namespace frugal::cli {

namespace {

struct OaeArguments {
  ModelArguments model;
  std::string dataset;
  std::string methods = "cag,rag-bm25,long,closed";
  size_t questions = 50;
  std::string size = "medium";
  size_t corpus_tokens = 0;
  uint64_t seed = 1;
  size_t top_k = 3;
  int32_t max_tokens = 24;
  std::string out = "oae-report";
  double grid = 481;
  double watts_per_core = 10;
  bool estimate = false;
  std::string powercap = "/sys/class/powercap";
  bool quiet = false;
};

std::vector<std::string> split_methods(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    oae_method_kv_type(item);  // an unknown name is an error naming the choices
    if (std::find(out.begin(), out.end(), item) != out.end()) {
      throw Error(fmt::format("method '{}' is named twice in --methods", item));
    }
    out.push_back(item);
  }
  if (out.empty()) throw Error("--methods names no method");
  return out;
}

void run(const OaeArguments& args) {
  OaeOptions options;
  options.methods = split_methods(args.methods);
  options.top_k = args.top_k;
  options.max_tokens = args.max_tokens;
  options.grid_grams_per_kwh = args.grid;
  options.energy.watts_per_core = args.watts_per_core;
  options.energy.force_estimate = args.estimate;
  options.energy.powercap_root = args.powercap;
  options.work_dir = std::filesystem::path(args.out) / "work";

  check_output_folder(args.out);
  // A bad file is reported before the model loads.
  const QaDataset full = load_qa_dataset(args.dataset);
  if (full.questions.empty()) {
    throw Error(fmt::format("{}: the dataset has no questions; give a SQuAD or HotpotQA file with questions",
                            args.dataset));
  }

  // Model load is part of every method's setup: measure it once. The weights
  // are mapped lazily, so a short forward pass inside the span reads them in;
  // otherwise the first method run would pay for it.
  const EnergyMeter meter(options.energy);
  const auto mark = meter.mark();
  const auto start = std::chrono::steady_clock::now();
  LoadedModel loaded = load_model(args.model);
  {
    KvCache warm(loaded.model->config(), 8, loaded.cache_precision);
    const std::vector<TokenId> tokens(4, loaded.tokenizer->bos() >= 0 ? loaded.tokenizer->bos() : 0);
    loaded.model->forward(tokens, warm);
  }
  options.model_load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  options.model_load_joules = meter.joules_since(mark);
  options.precision = loaded.cache_precision;

  // The knowledge must fit the context with room for a question and answer.
  const int64_t context = args.model.context > 0 ? std::min(args.model.context, loaded.model->config().training_context)
                                                 : loaded.model->config().training_context;
  const size_t room = static_cast<size_t>(std::max<int64_t>(context - args.max_tokens - 256, 64));
  const size_t budget = std::min(args.corpus_tokens > 0 ? args.corpus_tokens : corpus_preset_tokens(args.size), room);
  const Tokenizer& tokenizer = *loaded.tokenizer;
  const PromptTemplate prompt = default_prompt_template(*loaded.model, tokenizer);  // as the methods will lay it out
  const QaDataset dataset = sample_qa_dataset(full, budget, args.questions, args.seed, [&](const Document& d) {
    return encode_document(tokenizer, prompt, d).size();
  });
  if (!args.quiet) {
    fmt::print(stderr, "{}: {} of {} passages (corpus budget {} tokens), {} questions; energy {}\n", dataset.name,
               dataset.passages.size(), full.passages.size(), budget, dataset.questions.size(),
               meter.description());
  }
  const bool terminal = ::isatty(STDERR_FILENO) != 0;
  const auto started = std::chrono::steady_clock::now();
  const OaeProgress progress = [&](const std::string& method, size_t done, size_t total) {
    if (args.quiet || (!terminal && done != total)) return;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    fmt::print(stderr, "{}{:<9} {}/{} questions ({:.0f} s){}", terminal ? "\r" : "", method, done, total, seconds,
               done == total ? "\n" : "");
  };
  const OaeReport report = run_oae(*loaded.model, tokenizer, dataset, options, progress);
  write_oae_reports(report, args.out);
  if (!args.quiet) {
    fmt::print(stderr, "wrote {0}/report.json, {0}/report.md and {0}/report.html\n", args.out);
  }
}

}  // namespace

void add_oae_command(CLI::App& app) {
  CLI::App* oae = app.add_subcommand("oae", "Overhead-aware efficiency benchmark: CAG vs RAG vs long context");
  oae->require_subcommand(1);
  auto args = std::make_shared<OaeArguments>();
  CLI::App* run_command = oae->add_subcommand("run", "Run the methods on a QA dataset and write the reports");
  add_model_arguments(*run_command, args->model, true);
  run_command->add_option("--dataset", args->dataset, "SQuAD v1.1/v2.0 or HotpotQA JSON")
      ->required()
      ->check(CLI::ExistingFile);
  run_command->add_option("--methods", args->methods, "comma-separated: cag, rag-bm25, long, closed, cag@TYPE (CAG with a KV type: "
                          "cag@q8_0...); for a thinking model also think, nothink, think@budget:N, think@exit:SPEC")
      ->capture_default_str();
  run_command->add_option("--n-questions", args->questions, "questions to ask (at most)")
      ->check(integer_in(1, int64_t{1} << 20))
      ->capture_default_str();
  run_command->add_option("--size", args->size, "corpus size: small (1000 tokens), medium (3500), large (7000)")
      ->check(CLI::IsMember({"small", "medium", "large"}))
      ->capture_default_str();
  run_command->add_option("--corpus-tokens", args->corpus_tokens, "corpus size in tokens (overrides --size)")
      ->check(integer_in(16, int64_t{1} << 24));
  run_command->add_option("--seed", args->seed, "sampling seed for passages and questions")->capture_default_str();
  run_command->add_option("--top-k", args->top_k, "passages RAG puts in the prompt")
      ->check(integer_in(1, 100))
      ->capture_default_str();
  run_command->add_option("-n,--n-predict", args->max_tokens, "answer tokens at most (greedy)")
      ->check(integer_in(1, 1024))
      ->capture_default_str();
  run_command->add_option("--out", args->out, "report folder")->capture_default_str();
  run_command->add_option("--grid-intensity", args->grid, "grams CO2e per kWh of the grid")
      ->check(number_in(0.0, 5000.0))
      ->capture_default_str();
  run_command->add_option("--watts-per-core", args->watts_per_core, "for estimated energy: W per busy core")
      ->check(number_in(0.01, 1000.0))
      ->capture_default_str();
  run_command->add_flag("--estimate-energy", args->estimate, "estimate energy even when RAPL is readable");
  run_command->add_option("--powercap", args->powercap, "powercap tree to read RAPL counters from")
      ->capture_default_str();
  run_command->add_flag("-q,--quiet", args->quiet, "no progress on stderr");
  run_command->callback([args] { run(*args); });
}

}  // namespace frugal::cli
