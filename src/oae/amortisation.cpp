// Setup amortised over N queries, break-even points, per-method statistics.
#include <algorithm>
#include <cmath>
#include <limits>

#include "frugal/oae.h"

namespace frugal {

double cost_per_query(const CostModel& cost, double n) {
  n = std::max(n, 1.0);
  return (cost.setup + n * cost.per_query) / n;
}

std::optional<uint64_t> break_even(const CostModel& a, const CostModel& b) {
  for (double v : {a.setup, a.per_query, b.setup, b.per_query}) {
    if (!std::isfinite(v)) return std::nullopt;
  }
  // cost_a(n) - cost_b(n) = (Sa - Sb) / n + (ma - mb)
  const double setup_extra = a.setup - b.setup;
  const double saving = b.per_query - a.per_query;
  if (saving < 0) return std::nullopt;  // a ends up dearer, whatever its setup
  if (setup_extra <= 0) return 1;
  if (saving == 0) return std::nullopt;
  const double n = std::ceil(setup_extra / saving);
  if (n > 1e18) return std::nullopt;  // beyond any deployment
  // The division may round either way: settle on the exact smallest N.
  uint64_t whole = std::max<uint64_t>(1, static_cast<uint64_t>(n));
  const auto fits = [&](uint64_t k) { return a.setup + k * a.per_query <= b.setup + k * b.per_query; };
  while (whole > 1 && fits(whole - 1)) --whole;
  while (!fits(whole)) ++whole;
  return whole;
}

double MethodResult::mean(double QuestionResult::*field) const {
  if (questions.empty()) return 0;
  double sum = 0;
  for (const auto& q : questions) sum += q.*field;
  return sum / static_cast<double>(questions.size());
}

double MethodResult::mean_tokens(size_t QuestionResult::*field) const {
  if (questions.empty()) return 0;
  double sum = 0;
  for (const auto& q : questions) sum += static_cast<double>(q.*field);
  return sum / static_cast<double>(questions.size());
}

double MethodResult::percentile(double QuestionResult::*field, double p) const {
  if (questions.empty()) return 0;
  std::vector<double> values;
  for (const auto& q : questions) values.push_back(q.*field);
  std::sort(values.begin(), values.end());
  // Linear interpolation between closest ranks (numpy's default).
  const double rank = p / 100.0 * static_cast<double>(values.size() - 1);
  const size_t low = static_cast<size_t>(std::floor(rank));
  const size_t high = std::min(values.size() - 1, low + 1);
  return values[low] + (values[high] - values[low]) * (rank - static_cast<double>(low));
}

double MethodResult::recall_at_k() const {
  if (questions.empty()) return 0;
  double hits = 0;
  for (const auto& q : questions) hits += q.gold_retrieved ? 1 : 0;
  return hits / static_cast<double>(questions.size());
}

const MethodResult* OaeReport::find(std::string_view name) const {
  for (const auto& m : methods) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

double oae_score(const MethodResult& method, double n) {
  const double joules = cost_per_query(method.energy(), n);
  const double f1 = method.mean(&QuestionResult::f1);
  if (joules > 0) return f1 / joules;
  return f1 > 0 ? std::numeric_limits<double>::infinity() : 0;  // free and useful beats everything
}

}  // namespace frugal
