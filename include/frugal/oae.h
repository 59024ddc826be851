// The Overhead-Aware Efficiency (OAE) benchmark (docs/oae.md): CAG, RAG with
// BM25, plain long context and closed book answer the same questions on the
// same model; each is charged its one-time setup as well as its per-query
// cost, amortised over a bounded number of queries N.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "frugal/energy.h"
#include "frugal/knowledge.h"
#include "frugal/model.h"
#include "frugal/qa_dataset.h"
#include "frugal/thinking.h"
#include "frugal/tokenizer.h"

namespace frugal {

// ---------------------------------------------------------------- amortisation

// One resource (seconds, joules, grams of CO2e) of one method: paid once,
// then per query.
struct CostModel {
  double setup = 0;
  double per_query = 0;
};

// (setup + n * per_query) / n, for n >= 1.
double cost_per_query(const CostModel& cost, double n);

// The smallest whole N >= 1 from which `a` costs no more per query than `b`
// (and stays so); nullopt when that never happens. 1 when `a` is never
// dearer.
std::optional<uint64_t> break_even(const CostModel& a, const CostModel& b);

// ---------------------------------------------------------------- methods

// What a deployer must run, keep and set for a method.
struct MovingParts {
  int processes = 0;
  int files = 0;     // files to ship and keep in step (model, caches, indexes)
  int indexes = 0;
  int services = 0;  // long-running services besides the inference process
  std::vector<std::string> knobs;  // settings a deployer must choose
  int total() const { return processes + files + indexes + services + static_cast<int>(knobs.size()); }
};

struct QuestionResult {
  std::string id;
  std::string question;
  std::string answer;
  double exact_match = 0;
  double f1 = 0;
  bool gold_retrieved = false;  // RAG: every gold passage among the top k
  double ttft_seconds = 0;      // from the question to the first token (retrieval included)
  double total_seconds = 0;
  double joules = 0;
  size_t prefilled_tokens = 0;
  size_t decoded_tokens = 0;
  size_t thinking_tokens = 0;  // of decoded_tokens, a thinking model's thinking
  size_t probe_tokens = 0;     // run on early-exit probes' branches (besides decoded_tokens)
};

struct MethodResult {
  std::string name;         // cag, rag-bm25, long, closed
  std::string description;
  // Setup: model load plus what the method builds once (index, cache).
  double setup_seconds = 0;
  double setup_joules = 0;
  double model_load_seconds = 0;
  uint64_t disk_bytes = 0;  // index or cache files
  uint64_t kv_bytes = 0;    // KV held between queries (the cache's prefix)
  uint64_t peak_rss_bytes = 0;
  MovingParts moving_parts;
  std::vector<QuestionResult> questions;

  double mean(double QuestionResult::*field) const;
  double mean_tokens(size_t QuestionResult::*field) const;
  double percentile(double QuestionResult::*field, double p) const;
  double recall_at_k() const;  // share of questions with their gold passages retrieved
  CostModel time() const { return {setup_seconds, mean(&QuestionResult::total_seconds)}; }
  CostModel energy() const { return {setup_joules, mean(&QuestionResult::joules)}; }
};

// ---------------------------------------------------------------- running

// A method name: cag, rag-bm25, long, closed, or cag@TYPE -- CAG with its
// knowledge cache's keys and values in a KV type (cag@q8_0, cag@q4_h...):
// the type is a knob of the method, measured like the others. Returns the
// type of a cag@TYPE name (nullopt for the others); throws Error naming the
// choices for an unknown name.
std::optional<KvPrecision> oae_method_kv_type(std::string_view method);

// Thinking methods (CAG with a thinking model, docs/thinking.md): think (the
// model's own thinking), nothink, think@budget:N, think@exit:SPEC (SPEC as
// --reasoning-exit takes it). nullopt for other names.
std::optional<ThinkingSettings> oae_method_thinking(std::string_view method);

struct OaeOptions {
  std::vector<std::string> methods = {"cag", "rag-bm25", "long", "closed"};
  size_t top_k = 3;
  int32_t max_tokens = 24;       // per answer (greedy)
  int32_t thinking_tokens = 512;  // more room for a thinking model's thinking
  double grid_grams_per_kwh = 481;  // Ember, world average 2023 (docs/oae.md)
  std::vector<uint64_t> query_counts = {1, 10, 100, 1000, 10000};  // N for the report's tables
  std::filesystem::path work_dir;  // where the index and the cache are written (empty: a temporary folder)
  KvTypes precision = KvPrecision::F32;  // of the knowledge cache and every method's KV cache
  double model_load_seconds = 0;   // measured by the caller, charged to every method's setup
  double model_load_joules = 0;
  EnergyOptions energy;
};

struct OaeReport {
  std::string model;           // file name and summary
  std::string dataset;
  size_t passages = 0;
  size_t corpus_tokens = 0;    // the knowledge prefix's tokens
  std::string energy_source;   // measured (RAPL...) / estimated (...)
  bool energy_measured = false;
  OaeOptions options;
  std::string machine;         // CPU model, cores
  std::string date;
  std::vector<MethodResult> methods;

  const MethodResult* find(std::string_view name) const;
  double grams(double joules) const { return joules / 3.6e6 * options.grid_grams_per_kwh; }
};

// Called after each question: method, questions done, questions in all.
using OaeProgress = std::function<void(const std::string& method, size_t done, size_t total)>;

// Runs every method over `dataset` (already sampled) with `model`.
OaeReport run_oae(Model& model, const Tokenizer& tokenizer, const QaDataset& dataset, const OaeOptions& options,
                  const OaeProgress& progress = {});

// The OAE score at N (docs/oae.md): mean F1 per joule per query, setup
// amortised over N queries.
double oae_score(const MethodResult& method, double n);

// report.json, report.md and report.html (self-contained, charts as inline
// SVG) in `directory`.
void write_oae_reports(const OaeReport& report, const std::filesystem::path& directory);
std::string oae_report_json(const OaeReport& report);
std::string oae_report_markdown(const OaeReport& report);
std::string oae_report_html(const OaeReport& report);

}  // namespace frugal
