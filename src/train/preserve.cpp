// Base distributions for --preserve and the drift report (preserve.h).
#include "train/preserve.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace frugal {

namespace {

std::vector<size_t> predicting_rows(const TrainingExample& example) {
  std::vector<size_t> rows;
  for (const int32_t t : example.targets) rows.push_back(static_cast<size_t>(t - 1));
  return rows;
}

// Softmax of one row of logits, in double.
std::vector<double> probabilities(const float* z, size_t vocab) {
  const float largest = *std::max_element(z, z + vocab);
  std::vector<double> p(vocab);
  double sum = 0;
  for (size_t i = 0; i < vocab; ++i) sum += p[i] = std::exp(static_cast<double>(z[i] - largest));
  for (double& x : p) x /= sum;
  return p;
}

}  // namespace

TrainingSequence preserved_sequence(LoraTrainingPass& pass, const TrainingExample& example, size_t top) {
  const std::vector<size_t> rows = predicting_rows(example);
  const std::vector<float> logits = pass.logits(example.tokens, rows, false);
  const size_t vocab = logits.size() / std::max<size_t>(rows.size(), 1);
  TrainingSequence sequence;
  sequence.tokens = example.tokens;
  std::vector<int32_t> order(vocab);
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::vector<double> p = probabilities(&logits[i * vocab], vocab);
    std::iota(order.begin(), order.end(), 0);
    const size_t kept = std::min(top, vocab);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(kept), order.end(),
                      [&](int32_t a, int32_t b) { return p[static_cast<size_t>(a)] > p[static_cast<size_t>(b)]; });
    PreservedDistribution d;
    d.row = static_cast<int32_t>(rows[i]);
    double mass = 0;
    for (size_t k = 0; k < kept; ++k) {
      d.ids.push_back(order[k]);
      d.probabilities.push_back(static_cast<float>(p[static_cast<size_t>(order[k])]));
      mass += p[static_cast<size_t>(order[k])];
    }
    d.tail = static_cast<float>(std::max(0.0, 1.0 - mass));
    sequence.preserved.push_back(std::move(d));
  }
  return sequence;
}

double mean_divergence(LoraTrainingPass& pass, const std::vector<TrainingExample>& examples) {
  double total = 0;
  size_t count = 0;
  for (const TrainingExample& example : examples) {
    const std::vector<size_t> rows = predicting_rows(example);
    const std::vector<float> base = pass.logits(example.tokens, rows, false);
    const std::vector<float> tuned = pass.logits(example.tokens, rows, true);
    const size_t vocab = base.size() / rows.size();
    for (size_t i = 0; i < rows.size(); ++i) {
      const std::vector<double> p = probabilities(&base[i * vocab], vocab), q = probabilities(&tuned[i * vocab], vocab);
      double divergence = 0;
      for (size_t j = 0; j < vocab; ++j) {
        if (p[j] > 0) divergence += p[j] * (std::log(p[j]) - std::log(std::max(q[j], 1e-300)));
      }
      total += divergence;
      ++count;
    }
  }
  return count == 0 ? std::nan("") : total / static_cast<double>(count);
}

}  // namespace frugal
