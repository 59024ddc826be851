// report.md, and the formatting helpers both human-readable reports share.
#include <cmath>

#include <fmt/format.h>

#include "frugal/oae.h"
#include "oae/report_format.h"

namespace frugal {

namespace oae {

std::string human_bytes(uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1 << 30) return fmt::format("{:.2f} GiB", b / (1 << 30));
  if (b >= 1 << 20) return fmt::format("{:.1f} MiB", b / (1 << 20));
  if (b >= 1 << 10) return fmt::format("{:.1f} KiB", b / (1 << 10));
  return fmt::format("{} B", bytes);
}

std::string milliseconds(double seconds) {
  const double ms = seconds * 1000;
  return ms >= 100 ? fmt::format("{:.0f} ms", ms) : fmt::format("{:.1f} ms", ms);
}

std::string joules(double j) {
  if (j >= 1000) return fmt::format("{:.2f} kJ", j / 1000);
  if (j >= 1) return fmt::format("{:.2f} J", j);
  return fmt::format("{:.1f} mJ", j * 1000);
}

std::string grams(double g) {
  if (g >= 1) return fmt::format("{:.2f} g", g);
  if (g >= 1e-3) return fmt::format("{:.2f} mg", g * 1e3);
  return fmt::format("{:.1f} µg", g * 1e6);
}

std::string break_even_text(const std::optional<uint64_t>& n) {
  if (!n) return "never";
  if (*n == 1) return "from the first query";
  return fmt::format("from N = {}", *n);
}

std::vector<std::string> findings(const OaeReport& r) {
  std::vector<std::string> out;
  const MethodResult* cag = r.find("cag");
  if (cag == nullptr) return out;
  for (const auto& other : r.methods) {
    if (other.name == "cag" || other.name == "closed") continue;
    const auto energy = break_even(cag->energy(), other.energy());
    const auto time = break_even(cag->time(), other.time());
    out.push_back(fmt::format(
        "CAG uses less energy per query than {} {} (setup {} vs {}, then {} vs {} per query); it takes less time "
        "per query {}.",
        other.name, energy ? break_even_text(energy) + " on" : "at no N from which it stays so", joules(cag->setup_joules),
        joules(other.setup_joules), joules(cag->mean(&QuestionResult::joules)),
        joules(other.mean(&QuestionResult::joules)), time ? break_even_text(time) + " on" : "at no N from which it stays so"));
    const double ttft_ratio = cag->mean(&QuestionResult::ttft_seconds) > 0
                                  ? other.mean(&QuestionResult::ttft_seconds) / cag->mean(&QuestionResult::ttft_seconds)
                                  : 0;
    out.push_back(fmt::format("Time to first token: CAG {} against {} for {} ({:.1f}x).",
                              milliseconds(cag->mean(&QuestionResult::ttft_seconds)),
                              milliseconds(other.mean(&QuestionResult::ttft_seconds)), other.name, ttft_ratio));
  }
  for (const auto& m : r.methods) {
    if (m.name == "rag-bm25") {
      out.push_back(fmt::format("BM25 put every gold passage in its top {} for {:.0f}% of the questions; for the "
                                "other {:.0f}% the answer was not in RAG's prompt.",
                                r.options.top_k, 100 * m.recall_at_k(), 100 * (1 - m.recall_at_k())));
    }
  }
  return out;
}

}  // namespace oae

std::string oae_report_markdown(const OaeReport& r) {
  using namespace oae;
  std::string md;
  auto line = [&](const std::string& s) { md += s + "\n"; };
  line("# OAE report: overhead-aware efficiency of CAG, RAG and long context");
  line("");
  line(fmt::format("- **Model**: {}", r.model));
  line(fmt::format("- **Dataset**: {}: {} passages, {} tokens of knowledge, {} questions", r.dataset, r.passages,
                   r.corpus_tokens, r.methods.empty() ? 0 : r.methods.front().questions.size()));
  line(fmt::format("- **Machine**: {}; {}", r.machine, r.date));
  line(fmt::format("- **Energy**: {}; carbon at {} gCO2e/kWh", r.energy_source, r.options.grid_grams_per_kwh));
  line(fmt::format("- **Settings**: greedy answers of at most {} tokens; RAG top-k = {}", r.options.max_tokens,
                   r.options.top_k));
  line("");
  line("## Findings");
  line("");
  for (const auto& f : findings(r)) line("- " + f);
  line("");
  line("## Quality and cost per query");
  line("");
  line("| method | EM | F1 | recall@k | TTFT p50 | TTFT p95 | time/query | energy/query | CO2e/query | prefilled "
       "tokens/query |");
  line("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const auto& m : r.methods) {
    line(fmt::format("| {} | {:.3f} | {:.3f} | {} | {} | {} | {} | {} | {} | {:.0f} |", m.name,
                     m.mean(&QuestionResult::exact_match), m.mean(&QuestionResult::f1),
                     m.name == "rag-bm25" ? fmt::format("{:.2f}", m.recall_at_k()) : "-",
                     milliseconds(m.percentile(&QuestionResult::ttft_seconds, 50)),
                     milliseconds(m.percentile(&QuestionResult::ttft_seconds, 95)),
                     milliseconds(m.mean(&QuestionResult::total_seconds)), joules(m.mean(&QuestionResult::joules)),
                     grams(r.grams(m.mean(&QuestionResult::joules))),
                     m.mean_tokens(&QuestionResult::prefilled_tokens)));
  }
  line("");
  bool thinks = false;
  for (const auto& m : r.methods) thinks = thinks || m.mean_tokens(&QuestionResult::thinking_tokens) > 0;
  if (thinks) {
    line("## Thinking: accuracy against thinking tokens");
    line("");
    line("Thinking tokens are part of the decoded tokens; probe tokens are run on early-exit probes' branches "
         "besides them (a kept probe's are also the answer's). docs/thinking.md says when each method pays off.");
    line("");
    line("| method | EM | F1 | thinking tokens/query | probe tokens/query | decoded tokens/query | time/query | "
         "energy/query |");
    line("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (const auto& m : r.methods) {
      line(fmt::format("| {} | {:.3f} | {:.3f} | {:.1f} | {:.1f} | {:.1f} | {} | {} |", m.name,
                       m.mean(&QuestionResult::exact_match), m.mean(&QuestionResult::f1),
                       m.mean_tokens(&QuestionResult::thinking_tokens), m.mean_tokens(&QuestionResult::probe_tokens),
                       m.mean_tokens(&QuestionResult::decoded_tokens), milliseconds(m.mean(&QuestionResult::total_seconds)),
                       joules(m.mean(&QuestionResult::joules))));
    }
    line("");
  }
  line("## One-time setup and what it leaves behind");
  line("");
  line("| method | setup time | of which model load | setup energy | disk | KV kept | peak RSS | moving parts |");
  line("|---|---:|---:|---:|---:|---:|---:|---|");
  for (const auto& m : r.methods) {
    std::string knobs;
    for (const auto& k : m.moving_parts.knobs) knobs += (knobs.empty() ? "" : ", ") + k;
    line(fmt::format("| {} | {:.2f} s | {:.2f} s | {} | {} | {} | {} | {}: {} process, {} files, {} index, {} "
                     "services; knobs: {} |",
                     m.name, m.setup_seconds, m.model_load_seconds, joules(m.setup_joules),
                     human_bytes(m.disk_bytes), human_bytes(m.kv_bytes), human_bytes(m.peak_rss_bytes),
                     m.moving_parts.total(), m.moving_parts.processes, m.moving_parts.files, m.moving_parts.indexes,
                     m.moving_parts.services, knobs));
  }
  line("");
  line("## Cost per query with the setup amortised over N queries");
  line("");
  std::string header = "| method |", rule = "|---|";
  for (uint64_t n : r.options.query_counts) {
    header += fmt::format(" N = {} |", n);
    rule += "---:|";
  }
  for (const auto& [title, energy] : {std::pair{"Energy", true}, std::pair{"Time", false}}) {
    line(fmt::format("{} per query:", title));
    line("");
    line(header);
    line(rule);
    for (const auto& m : r.methods) {
      std::string row = "| " + m.name + " |";
      for (uint64_t n : r.options.query_counts) {
        const double v = cost_per_query(energy ? m.energy() : m.time(), static_cast<double>(n));
        row += fmt::format(" {} |", energy ? joules(v) : milliseconds(v));
      }
      line(row);
    }
    line("");
  }
  line("Break-even N (the number of queries from which the row's method costs no more per query than the "
       "column's):");
  line("");
  std::string be_header = "| energy / time |", be_rule = "|---|";
  for (const auto& b : r.methods) {
    be_header += " " + b.name + " |";
    be_rule += "---|";
  }
  line(be_header);
  line(be_rule);
  for (const auto& a : r.methods) {
    std::string row = "| " + a.name + " |";
    for (const auto& b : r.methods) {
      if (&a == &b) {
        row += " - |";
        continue;
      }
      auto text = [](const std::optional<uint64_t>& n) { return n ? std::to_string(*n) : std::string("never"); };
      row += fmt::format(" {} / {} |", text(break_even(a.energy(), b.energy())), text(break_even(a.time(), b.time())));
    }
    line(row);
  }
  line("");
  line("## OAE score: F1 per joule per query, setup amortised over N queries");
  line("");
  line(header);
  line(rule);
  for (const auto& m : r.methods) {
    std::string row = "| " + m.name + " |";
    for (uint64_t n : r.options.query_counts) row += fmt::format(" {:.4g} |", oae_score(m, static_cast<double>(n)));
    line(row);
  }
  line("");
  line("How to read this: docs/oae.md.");
  return md;
}

}  // namespace frugal
