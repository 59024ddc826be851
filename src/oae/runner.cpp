// Running the OAE methods over one dataset on one model.
#include <charconv>
#include <chrono>
#include <ctime>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "frugal/bm25_index.h"
#include "frugal/error.h"
#include "frugal/generate.h"
#include "frugal/knowledge_cache.h"
#include "frugal/oae.h"

#include <memory>

namespace frugal {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string cpu_description() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      model = line.substr(line.find(':') + 1);
      model.erase(0, model.find_first_not_of(" \t"));
      break;
    }
  }
  return fmt::format("{}, {} hardware threads", model, std::thread::hardware_concurrency());
}

std::string today() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d", &utc);
  return buffer;
}

MovingParts moving_parts_of(const std::string& method) {
  if (method == "cag") return {1, 2, 0, 0, {"context size", "answer length"}};
  if (method.starts_with("cag@")) return {1, 3, 0, 0, {"context size", "KV type", "answer length"}};
  if (method.starts_with("think@budget")) return {1, 2, 0, 0, {"context size", "answer length", "thinking budget"}};
  if (method.starts_with("think@exit")) return {1, 2, 0, 0, {"context size", "answer length", "exit threshold"}};
  if (method == "think" || method == "nothink") return {1, 2, 0, 0, {"context size", "answer length"}};
  if (method == "rag-bm25") {
    return {1, 3, 1, 0, {"top-k", "passage splitting", "query formulation", "context size", "answer length"}};
  }
  if (method == "long") return {1, 2, 0, 0, {"context size", "answer length"}};
  return {1, 1, 0, 0, {"answer length"}};
}

std::string description_of(const std::string& method, size_t k) {
  if (method == "cag") return "Cache-Augmented Generation: corpus prefilled once into a knowledge cache file";
  if (method.starts_with("cag@")) {
    return fmt::format("Cache-Augmented Generation with the knowledge cache's keys and values in {}",
                       method.substr(4));
  }
  if (method == "rag-bm25") return fmt::format("RAG: top {} passages by BM25 (SQLite FTS5 index), then generation", k);
  if (method == "long") return "Long context: the whole corpus prefilled with every question";
  if (method == "think") return "CAG, the model thinking as long as it wants";
  if (method == "nothink") return "CAG, thinking turned off (an empty thinking block)";
  if (method.starts_with("think@budget:")) {
    return fmt::format("CAG, thinking cut after {} tokens (budget forcing)", method.substr(13));
  }
  if (method.starts_with("think@exit:")) {
    return fmt::format("CAG, thinking ended early when a probed answer is confident ({})", method.substr(11));
  }
  return "Closed book: the question alone";
}

constexpr const char* kClosedBookSystem = "Answer the question briefly.";

class Runner {
 public:
  Runner(Model& model, const Tokenizer& tokenizer, const QaDataset& dataset, const OaeOptions& options,
         const OaeProgress& progress)
      : model_(model), tokenizer_(tokenizer), dataset_(dataset), options_(options), progress_(progress),
        meter_(options.energy) {
    prompt_ = default_prompt_template(model, tokenizer);
    header_ = encode_header(tokenizer, prompt_, prompt_.default_system);
    // Closed book has no documents: told to use "the documents below" it
    // would answer "unknown" to everything.
    closed_header_ = encode_header(tokenizer, prompt_, kClosedBookSystem);
    // RAG and long context reuse these tokens: their cost is part of those
    // methods' setup (CAG tokenizes inside its own build).
    const auto mark = meter_.mark();
    const auto start = Clock::now();
    for (const auto& passage : dataset.passages) passage_tokens_.push_back(encode_document(tokenizer, prompt_, passage));
    tokenize_seconds_ = seconds_since(start);
    tokenize_joules_ = meter_.joules_since(mark);
    generation_.max_tokens = options.max_tokens;
    generation_.sampling.temperature = 0;
    thinking_format_ = detect_thinking_format(model.file().get_string_or("tokenizer.chat_template", ""));
    // A thinking model thinks in every method unless the method says
    // otherwise: its answer is what follows the thinking.
    if (thinking_format_) {
      generation_.thinking = make_thinking_options(thinking_format_, {}, tokenizer);
      generation_.max_tokens += options.thinking_tokens;
    }
  }

  size_t corpus_tokens() const {
    size_t n = header_.size();
    for (const auto& p : passage_tokens_) n += p.size();
    return n;
  }
  std::string energy_source() const { return meter_.description(); }
  bool energy_measured() const { return meter_.measured(); }

  MethodResult run(const std::string& method) {
    MethodResult result;
    result.name = method;
    result.description = description_of(method, options_.top_k);
    result.moving_parts = moving_parts_of(method);
    result.model_load_seconds = options_.model_load_seconds;
    result.setup_seconds = options_.model_load_seconds;
    result.setup_joules = options_.model_load_joules;
    reset_peak_rss();
    if (method == "cag") {
      run_cag(result, options_.precision, generation_);
    } else if (const auto thinking = oae_method_thinking(method)) {
      if (!thinking_format_) {
        throw Error(fmt::format("method '{}': this model does not think (its chat template has no <think> block)",
                                method));
      }
      GenerationOptions generation = generation_;
      generation.thinking = make_thinking_options(thinking_format_, *thinking, tokenizer_);
      run_cag(result, options_.precision, generation);
    } else if (const auto type = oae_method_kv_type(method)) {
      run_cag(result, *type, generation_);
    } else if (method == "rag-bm25") {
      run_rag(result);
    } else if (method == "long" || method == "closed") {
      run_plain(result, method == "long");
    } else {
      oae_method_kv_type(method);  // throws, naming the choices
      throw Error(fmt::format("unknown OAE method '{}'", method));
    }
    result.peak_rss_bytes = peak_rss_bytes();
    return result;
  }

 private:
  std::vector<TokenId> question_prompt(std::vector<TokenId> tokens, const QaQuestion& q) const {
    const auto question = encode_question(tokenizer_, prompt_, q.question);
    tokens.insert(tokens.end(), question.begin(), question.end());
    return tokens;
  }

  void score(QuestionResult& r, const QaQuestion& q, const GenerationResult& g) const {
    r.id = q.id;
    r.question = q.question;
    r.answer = g.text;
    const auto first_text = r.answer.find_first_not_of(" \t\n");
    if (first_text != std::string::npos) r.answer = r.answer.substr(0, r.answer.find('\n', first_text));
    const auto first = r.answer.find_first_not_of(" \t\n");
    r.answer = first == std::string::npos ? "" : r.answer.substr(first, r.answer.find_last_not_of(" \t\n") - first + 1);
    r.exact_match = exact_match(r.answer, q.answers);
    r.f1 = f1_score(r.answer, q.answers);
    r.decoded_tokens = g.tokens.size();
    r.thinking_tokens = g.thinking_tokens;
    r.probe_tokens = g.probe_tokens;
  }

  // An answer is one line: generation stops at a newline that follows some
  // text (a leading newline is skipped, not taken for an empty answer).
  static TextCallback one_line() {
    auto seen_text = std::make_shared<bool>(false);
    return [seen_text](std::string_view piece) {
      for (char c : piece) {
        if (c == '\n' && *seen_text) return false;
        if (c != '\n' && c != ' ' && c != '\t') *seen_text = true;
      }
      return true;
    };
  }

  // Prefills `tokens` from scratch and answers.
  GenerationResult answer_from_scratch(const std::vector<TokenId>& tokens) {
    const int64_t context = std::min<int64_t>(model_.config().training_context,
                                              static_cast<int64_t>(tokens.size()) + generation_.max_tokens + 8);
    KvCache cache(model_.config(), context, options_.precision);
    return generate(model_, tokenizer_, cache, tokens, generation_, one_line());
  }

  // `body` gets the question's start time: time to first token counts from
  // there (question tokenization, retrieval and cache set-up included).
  void each_question(MethodResult& result,
                     const std::function<void(const QaQuestion&, QuestionResult&, Clock::time_point)>& body) {
    for (size_t i = 0; i < dataset_.questions.size(); ++i) {
      const QaQuestion& q = dataset_.questions[i];
      QuestionResult r;
      const auto mark = meter_.mark();
      const auto start = Clock::now();
      body(q, r, start);
      r.total_seconds = seconds_since(start);
      r.joules = meter_.joules_since(mark);
      result.questions.push_back(std::move(r));
      if (progress_) progress_(result.name, i + 1, dataset_.questions.size());
    }
  }

  void run_cag(MethodResult& result, KvTypes precision, const GenerationOptions& generation) {
    const auto mark = meter_.mark();
    const auto start = Clock::now();
    const auto path = options_.work_dir / fmt::format("knowledge-{}-{}.fkv", kv_precision_name(precision.keys),
                                                             kv_precision_name(precision.values));
    {
      KnowledgeBuildOptions build;
      build.prompt = prompt_;
      build.reserve = generation.max_tokens + 128;
      build.precision = precision;
      KnowledgeCache::build(model_, tokenizer_, dataset_.passages, build).save(path);
    }
    KnowledgeCache cache = KnowledgeCache::load(path, model_, tokenizer_);
    result.setup_seconds += seconds_since(start);
    result.setup_joules += meter_.joules_since(mark);
    result.disk_bytes = std::filesystem::file_size(path);
    result.kv_bytes = cache.kv_bytes();
    each_question(result, [&](const QaQuestion& q, QuestionResult& r, Clock::time_point start_query) {
      const auto before = Clock::now();
      const GenerationResult g = cache.ask(q.question, generation, one_line());
      r.ttft_seconds = std::chrono::duration<double>(before - start_query).count() + g.first_token_seconds;
      r.prefilled_tokens = g.prompt_tokens;
      score(r, q, g);
      r.gold_retrieved = true;  // every passage is in the context
    });
  }

  void run_rag(MethodResult& result) {
    const auto mark = meter_.mark();
    const auto start = Clock::now();
    const auto path = options_.work_dir / "bm25.sqlite";
    { Bm25Index::build(path, dataset_.passages); }
    Bm25Index index = Bm25Index::open(path);
    result.setup_seconds += seconds_since(start);
    result.setup_joules += meter_.joules_since(mark);
    result.setup_seconds += tokenize_seconds_;
    result.setup_joules += tokenize_joules_;
    result.disk_bytes = std::filesystem::file_size(path);
    each_question(result, [&](const QaQuestion& q, QuestionResult& r, Clock::time_point start_query) {
      const auto hits = index.search(q.question, options_.top_k);
      std::vector<TokenId> tokens = header_;
      std::vector<bool> retrieved(dataset_.passages.size(), false);
      for (const auto& hit : hits) {
        retrieved[hit.index] = true;
        tokens.insert(tokens.end(), passage_tokens_[hit.index].begin(), passage_tokens_[hit.index].end());
      }
      const auto prompt = question_prompt(std::move(tokens), q);
      const double before = seconds_since(start_query);
      const GenerationResult g = answer_from_scratch(prompt);
      r.ttft_seconds = before + g.first_token_seconds;
      r.prefilled_tokens = prompt.size();
      score(r, q, g);
      r.gold_retrieved = !q.gold_passages.empty();
      for (size_t p : q.gold_passages) r.gold_retrieved = r.gold_retrieved && retrieved[p];
    });
  }

  void run_plain(MethodResult& result, bool with_corpus) {
    std::vector<TokenId> base = with_corpus ? header_ : closed_header_;
    if (with_corpus) {
      result.setup_seconds += tokenize_seconds_;
      result.setup_joules += tokenize_joules_;
      for (const auto& p : passage_tokens_) base.insert(base.end(), p.begin(), p.end());
    }
    each_question(result, [&](const QaQuestion& q, QuestionResult& r, Clock::time_point start_query) {
      const auto prompt = question_prompt(base, q);
      const double before = seconds_since(start_query);
      const GenerationResult g = answer_from_scratch(prompt);
      r.ttft_seconds = before + g.first_token_seconds;
      r.prefilled_tokens = prompt.size();
      score(r, q, g);
      r.gold_retrieved = with_corpus;
    });
  }

  Model& model_;
  const Tokenizer& tokenizer_;
  const QaDataset& dataset_;
  const OaeOptions& options_;
  const OaeProgress& progress_;
  EnergyMeter meter_;
  PromptTemplate prompt_ = plain_prompt_template();
  std::optional<ThinkingFormat> thinking_format_;
  std::vector<TokenId> header_, closed_header_;
  std::vector<std::vector<TokenId>> passage_tokens_;
  double tokenize_seconds_ = 0, tokenize_joules_ = 0;
  GenerationOptions generation_;
};

}  // namespace

OaeReport run_oae(Model& model, const Tokenizer& tokenizer, const QaDataset& dataset, const OaeOptions& options_in,
                  const OaeProgress& progress) {
  if (dataset.questions.empty()) throw Error("the dataset sample has no questions");
  OaeOptions options = options_in;
  if (options.work_dir.empty()) options.work_dir = std::filesystem::temp_directory_path() / "frugal-oae";
  for (size_t i = 0; i < options.methods.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (options.methods[i] == options.methods[j]) {
        throw Error(fmt::format("method '{}' is named twice", options.methods[i]));
      }
    }
  }
  std::filesystem::create_directories(options.work_dir);
  Runner runner(model, tokenizer, dataset, options, progress);
  OaeReport report;
  report.model = fmt::format("{} ({}, {} layers, embedding {})", model.file().source_name(),
                             model.config().architecture, model.config().layer_count, model.config().embedding_size);
  report.dataset = dataset.name;
  report.passages = dataset.passages.size();
  report.corpus_tokens = runner.corpus_tokens();
  report.energy_source = runner.energy_source();
  report.energy_measured = runner.energy_measured();
  report.options = options;
  report.machine = cpu_description();
  report.date = today();
  for (const auto& method : options.methods) report.methods.push_back(runner.run(method));
  return report;
}

std::optional<ThinkingSettings> oae_method_thinking(std::string_view method) {
  ThinkingSettings settings;
  if (method == "think") return settings;
  if (method == "nothink") {
    settings.enabled = false;
    return settings;
  }
  if (method.starts_with("think@budget:")) {
    const std::string_view n = method.substr(13);
    const auto [end, error] = std::from_chars(n.data(), n.data() + n.size(), settings.budget);
    if (error != std::errc() || end != n.data() + n.size() || settings.budget < 0) {
      throw Error(fmt::format("OAE method '{}': the budget must be a whole number of tokens", method));
    }
    return settings;
  }
  if (method.starts_with("think@exit:")) {
    settings.exit = parse_early_exit(method.substr(11));
    return settings;
  }
  return std::nullopt;
}

std::optional<KvPrecision> oae_method_kv_type(std::string_view method) {
  if (method == "cag" || method == "rag-bm25" || method == "long" || method == "closed") return std::nullopt;
  if (oae_method_thinking(method)) return std::nullopt;
  if (method.starts_with("cag@")) {
    if (const auto type = parse_kv_precision(method.substr(4))) return type;
  }
  throw Error(fmt::format("unknown OAE method '{}'; choose from cag, rag-bm25, long, closed, cag@TYPE with TYPE "
                          "a KV type ({}), or for a thinking model think, nothink, think@budget:N, think@exit:SPEC",
                          method, kv_precision_names()));
}

}  // namespace frugal
