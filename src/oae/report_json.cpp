// report.json: everything measured, per method and per question, plus the
// amortised costs and break-even points the other reports show.
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "frugal/error.h"
#include "frugal/oae.h"

namespace frugal {

namespace {

using nlohmann::ordered_json;

ordered_json cost_json(const CostModel& cost, const std::vector<uint64_t>& counts, double scale = 1.0) {
  ordered_json per_n = ordered_json::object();
  for (uint64_t n : counts) per_n[std::to_string(n)] = cost_per_query(cost, static_cast<double>(n)) * scale;
  return {{"setup", cost.setup * scale}, {"per_query", cost.per_query * scale}, {"per_query_at_n", per_n}};
}

}  // namespace

std::string oae_report_json(const OaeReport& r) {
  ordered_json methods = ordered_json::array();
  for (const auto& m : r.methods) {
    ordered_json questions = ordered_json::array();
    for (const auto& q : m.questions) {
      questions.push_back({{"id", q.id}, {"question", q.question}, {"answer", q.answer},
                           {"exact_match", q.exact_match}, {"f1", q.f1}, {"gold_retrieved", q.gold_retrieved},
                           {"ttft_s", q.ttft_seconds}, {"total_s", q.total_seconds}, {"joules", q.joules},
                           {"prefilled_tokens", q.prefilled_tokens}, {"decoded_tokens", q.decoded_tokens},
                           {"thinking_tokens", q.thinking_tokens}, {"probe_tokens", q.probe_tokens}});
    }
    const CostModel energy = m.energy();
    const CostModel carbon{r.grams(energy.setup), r.grams(energy.per_query)};
    ordered_json oae = ordered_json::object();
    for (uint64_t n : r.options.query_counts) oae[std::to_string(n)] = oae_score(m, static_cast<double>(n));
    methods.push_back({
        {"name", m.name},
        {"description", m.description},
        {"quality", {{"exact_match", m.mean(&QuestionResult::exact_match)},
                     {"f1", m.mean(&QuestionResult::f1)},
                     {"recall_at_k", m.name == "rag-bm25" ? ordered_json(m.recall_at_k()) : ordered_json(nullptr)}}},
        {"setup", {{"seconds", m.setup_seconds}, {"model_load_seconds", m.model_load_seconds},
                   {"joules", m.setup_joules}, {"grams_co2e", r.grams(m.setup_joules)}}},
        {"per_query", {{"ttft_s_mean", m.mean(&QuestionResult::ttft_seconds)},
                       {"ttft_s_p50", m.percentile(&QuestionResult::ttft_seconds, 50)},
                       {"ttft_s_p95", m.percentile(&QuestionResult::ttft_seconds, 95)},
                       {"total_s_mean", m.mean(&QuestionResult::total_seconds)},
                       {"joules_mean", m.mean(&QuestionResult::joules)},
                       {"grams_co2e_mean", r.grams(m.mean(&QuestionResult::joules))},
                       {"prefilled_tokens_mean", m.mean_tokens(&QuestionResult::prefilled_tokens)},
                       {"decoded_tokens_mean", m.mean_tokens(&QuestionResult::decoded_tokens)},
                       {"thinking_tokens_mean", m.mean_tokens(&QuestionResult::thinking_tokens)},
                       {"probe_tokens_mean", m.mean_tokens(&QuestionResult::probe_tokens)}}},
        {"memory", {{"peak_rss_bytes", m.peak_rss_bytes}, {"kv_bytes", m.kv_bytes}, {"disk_bytes", m.disk_bytes}}},
        {"moving_parts", {{"processes", m.moving_parts.processes}, {"files", m.moving_parts.files},
                          {"indexes", m.moving_parts.indexes}, {"services", m.moving_parts.services},
                          {"knobs", m.moving_parts.knobs}, {"total", m.moving_parts.total()}}},
        {"amortised", {{"seconds", cost_json(m.time(), r.options.query_counts)},
                       {"joules", cost_json(energy, r.options.query_counts)},
                       {"grams_co2e", cost_json(carbon, r.options.query_counts)}}},
        {"oae_score_f1_per_joule", oae},
        {"questions", questions},
    });
  }
  ordered_json break_evens = ordered_json::array();
  for (const auto& a : r.methods) {
    for (const auto& b : r.methods) {
      if (&a == &b) continue;
      const auto time = break_even(a.time(), b.time());
      const auto energy = break_even(a.energy(), b.energy());
      break_evens.push_back({{"method", a.name}, {"versus", b.name},
                             {"time_n", time ? ordered_json(*time) : ordered_json(nullptr)},
                             {"energy_n", energy ? ordered_json(*energy) : ordered_json(nullptr)}});
    }
  }
  const ordered_json root = {
      {"benchmark", "frugal OAE"},
      {"date", r.date},
      {"machine", r.machine},
      {"model", r.model},
      {"dataset", {{"name", r.dataset}, {"passages", r.passages}, {"corpus_tokens", r.corpus_tokens},
                   {"questions", r.methods.empty() ? 0 : r.methods.front().questions.size()}}},
      {"energy", {{"source", r.energy_source}, {"measured", r.energy_measured},
                  {"grid_grams_co2e_per_kwh", r.options.grid_grams_per_kwh}}},
      {"settings", {{"top_k", r.options.top_k}, {"max_tokens", r.options.max_tokens},
                    {"query_counts", r.options.query_counts}}},
      {"methods", methods},
      {"break_even", break_evens},
  };
  return root.dump(1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void write_oae_reports(const OaeReport& report, const std::filesystem::path& directory) {
  std::filesystem::create_directories(directory);
  const std::pair<const char*, std::string> files[] = {
      {"report.json", oae_report_json(report)},
      {"report.md", oae_report_markdown(report)},
      {"report.html", oae_report_html(report)},
  };
  for (const auto& [name, text] : files) {
    std::ofstream out(directory / name, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw Error(fmt::format("{}: cannot write", (directory / name).string()));
  }
}

}  // namespace frugal
