#include "frugal/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "frugal/error.h"

namespace frugal {
namespace {

constexpr float kNegativeInfinity = -std::numeric_limits<float>::infinity();

// Strict order "more likely first"; equal logits go lowest id first, so that
// top-k = 1 and greedy agree on ties.
template <typename Candidate>
bool more_likely(const Candidate& a, const Candidate& b) {
  if (a.logit != b.logit) return a.logit > b.logit;
  return a.id < b.id;
}

std::mt19937 make_generator(uint64_t seed) {
  // Both halves of the 64-bit seed count, so seeds differing only in the
  // high bits still give different sequences.
  std::seed_seq sequence{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  return std::mt19937(sequence);
}

}  // namespace

Sampler::Sampler(SamplingParams params) : params_(params) {
  if (!(params_.repeat_penalty > 0.0f)) {
    throw Error("repeat penalty must be positive (1 turns it off), got " +
                std::to_string(params_.repeat_penalty));
  }
  if (std::isnan(params_.temperature) || std::isnan(params_.top_p) || std::isnan(params_.min_p)) {
    throw Error("sampling parameters must be numbers, got NaN");
  }
  reseed(params_.seed);
}

void Sampler::reseed(uint64_t seed) {
  if (seed == SamplingParams::kRandomSeed) {
    std::random_device device;
    seed = (static_cast<uint64_t>(device()) << 32) | device();
    if (seed == SamplingParams::kRandomSeed) seed = 0;  // keep the sentinel meaning "random"
  }
  seed_used_ = seed;
  rng_ = make_generator(seed);
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  if (logits.empty()) throw Error("cannot sample from an empty set of logits");

  // NaN would break the orderings below; such a token can never be picked.
  working_logits_.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    working_logits_[i] = std::isnan(logits[i]) ? kNegativeInfinity : logits[i];
  }
  apply_repeat_penalty(history);

  if (params_.temperature <= 0.0f) {
    // Greedy: first (lowest id) maximum.
    size_t best = 0;
    for (size_t i = 1; i < working_logits_.size(); ++i) {
      if (working_logits_[i] > working_logits_[best]) best = i;
    }
    return static_cast<int32_t>(best);
  }

  gather_candidates(logits);
  if (params_.top_p < 1.0f) apply_top_p();
  if (params_.min_p > 0.0f) apply_min_p();
  return draw();
}

void Sampler::apply_repeat_penalty(std::span<const int32_t> history) {
  if (params_.repeat_penalty == 1.0f || params_.repeat_last_n == 0 || history.empty()) return;
  size_t window = params_.repeat_last_n < 0
                      ? history.size()
                      : std::min(history.size(), static_cast<size_t>(params_.repeat_last_n));
  auto recent = history.last(window);
  // Each distinct token is penalized once, however often it appeared.
  penalized_.assign(recent.begin(), recent.end());
  std::sort(penalized_.begin(), penalized_.end());
  penalized_.erase(std::unique(penalized_.begin(), penalized_.end()), penalized_.end());
  for (int32_t id : penalized_) {
    if (id < 0 || static_cast<size_t>(id) >= working_logits_.size()) continue;
    float& logit = working_logits_[static_cast<size_t>(id)];
    // Dividing a positive logit and multiplying a negative one both make the
    // token less likely (llama.cpp's rule).
    logit = logit <= 0.0f ? logit * params_.repeat_penalty : logit / params_.repeat_penalty;
  }
}

void Sampler::gather_candidates(std::span<const float> logits) {
  size_t vocab = logits.size();
  candidates_.clear();
  sorted_count_ = 0;
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < vocab) {
    // One pass with a heap of the k best so far (front = the worst of them):
    // most tokens are rejected by a single comparison, and the vocabulary is
    // never copied or sorted.
    size_t k = static_cast<size_t>(params_.top_k);
    candidates_.reserve(k);
    for (size_t i = 0; i < vocab; ++i) {
      Candidate candidate{working_logits_[i], static_cast<int32_t>(i)};
      if (candidates_.size() < k) {
        candidates_.push_back(candidate);
        std::push_heap(candidates_.begin(), candidates_.end(), more_likely<Candidate>);
      } else if (more_likely(candidate, candidates_.front())) {
        std::pop_heap(candidates_.begin(), candidates_.end(), more_likely<Candidate>);
        candidates_.back() = candidate;
        std::push_heap(candidates_.begin(), candidates_.end(), more_likely<Candidate>);
      }
    }
    std::sort_heap(candidates_.begin(), candidates_.end(), more_likely<Candidate>);
    sorted_count_ = k;
    max_logit_ = candidates_.front().logit;
    return;
  }
  candidates_.resize(vocab);
  max_logit_ = kNegativeInfinity;
  for (size_t i = 0; i < vocab; ++i) {
    candidates_[i] = Candidate{working_logits_[i], static_cast<int32_t>(i)};
    max_logit_ = std::max(max_logit_, working_logits_[i]);
  }
}

void Sampler::sort_prefix(size_t count) {
  count = std::min(count, candidates_.size());
  if (count <= sorted_count_) return;
  // Everything past the sorted prefix ranks below it, so selecting the next
  // best stretch of the rest (linear time) and sorting only that stretch
  // extends the prefix.
  auto first = candidates_.begin() + static_cast<ptrdiff_t>(sorted_count_);
  auto middle = candidates_.begin() + static_cast<ptrdiff_t>(count);
  if (middle != candidates_.end()) std::nth_element(first, middle, candidates_.end(), more_likely<Candidate>);
  std::sort(first, middle, more_likely<Candidate>);
  sorted_count_ = count;
}

void Sampler::apply_top_p() {
  if (max_logit_ == kNegativeInfinity) return;
  // Probabilities at temperature 1, as llama.cpp's top-p sees them.
  auto weight = [this](const Candidate& c) { return std::exp(double(c.logit) - max_logit_); };
  double total = 0.0;
  for (const Candidate& candidate : candidates_) total += weight(candidate);
  double target = double(params_.top_p) * total;

  // Narrow down where the cut falls without sorting the vocabulary: split the
  // undecided range [low, high) around its middle (linear-time selection);
  // if the better half already reaches the target, the cut lies in it,
  // otherwise all of it is kept. Everything in [0, low) is kept, unsorted.
  auto begin = candidates_.begin();
  size_t low = 0;
  size_t high = candidates_.size();
  double mass_before_low = 0.0;
  if (sorted_count_ < candidates_.size()) {
    constexpr size_t kSortedStretch = 256;
    while (high - low > kSortedStretch) {
      size_t middle = low + (high - low) / 2;
      std::nth_element(begin + static_cast<ptrdiff_t>(low), begin + static_cast<ptrdiff_t>(middle),
                       begin + static_cast<ptrdiff_t>(high), more_likely<Candidate>);
      double better_half = 0.0;
      for (size_t i = low; i < middle; ++i) better_half += weight(candidates_[i]);
      if (mass_before_low + better_half >= target) {
        high = middle;
      } else {
        mass_before_low += better_half;
        low = middle;
      }
    }
    std::sort(begin + static_cast<ptrdiff_t>(low), begin + static_cast<ptrdiff_t>(high),
              more_likely<Candidate>);
  }
  // Walk the sorted stretch most likely first; the token that crosses the
  // threshold is kept (min_keep = 1).
  double cumulative = mass_before_low;
  size_t keep = low;
  while (keep < high) {
    cumulative += weight(candidates_[keep]);
    ++keep;
    if (cumulative >= target) break;
  }
  candidates_.resize(keep);
  sorted_count_ = low == 0 ? keep : 0;  // an unsorted kept block may precede the stretch
}

void Sampler::apply_min_p() {
  if (max_logit_ == kNegativeInfinity) return;
  // p >= min_p * p_max  <=>  logit >= max_logit + log(min_p).
  float threshold = max_logit_ + std::log(params_.min_p);
  auto below = [threshold](const Candidate& c) { return c.logit < threshold; };
  size_t sorted_kept = static_cast<size_t>(
      std::count_if(candidates_.begin(), candidates_.begin() + static_cast<ptrdiff_t>(sorted_count_),
                    [&](const Candidate& c) { return !below(c); }));
  if (std::all_of(candidates_.begin(), candidates_.end(), below)) {
    // min_p > 1 would remove everything; keep the best token.
    sort_prefix(1);
    candidates_.resize(1);
    sorted_count_ = 1;
    return;
  }
  // remove_if keeps order, and the sorted prefix loses only its tail.
  candidates_.erase(std::remove_if(candidates_.begin(), candidates_.end(), below), candidates_.end());
  sorted_count_ = sorted_kept;
}

int32_t Sampler::draw() {
  if (candidates_.size() == 1 || max_logit_ == kNegativeInfinity) {
    sort_prefix(1);
    return candidates_.front().id;
  }
  // Softmax at the requested temperature; weights need no normalization.
  double inverse_temperature = 1.0 / double(params_.temperature);
  double total = 0.0;
  for (Candidate& candidate : candidates_) {
    // Reuse the logit slot for the weight; sum the stored values so the walk
    // below adds up to exactly `total`.
    candidate.logit = static_cast<float>(
        std::exp((double(candidate.logit) - max_logit_) * inverse_temperature));
    total += candidate.logit;
  }
  std::uniform_real_distribution<double> uniform(0.0, total);
  double point = uniform(rng_);
  double cumulative = 0.0;
  int32_t last_possible = candidates_.front().id;
  for (const Candidate& candidate : candidates_) {
    if (candidate.logit <= 0.0f) continue;
    cumulative += candidate.logit;
    last_possible = candidate.id;
    if (point < cumulative) return candidate.id;
  }
  return last_possible;  // rounding left `point` just past the end
}

}  // namespace frugal
