// The beam search core: candidate ranking, finished hypotheses and stopping,
// following transformers' BeamSearchScorer / BeamHypotheses.
#include "frugal/beam_search.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/generate.h"

namespace frugal {

void check_beam_search_options(const BeamSearchOptions& options) {
  if (options.beam_width < 1) {
    throw Error(fmt::format("beam width must be at least 1, got {}", options.beam_width));
  }
  if (options.max_new_tokens < 1) {
    throw Error(fmt::format("beam search needs at least 1 new token, got max_new_tokens = {}",
                            options.max_new_tokens));
  }
  if (options.num_return_sequences < 1 || options.num_return_sequences > options.beam_width) {
    throw Error(fmt::format("num_return_sequences must be between 1 and the beam width ({}), got {}",
                            options.beam_width, options.num_return_sequences));
  }
  if (!std::isfinite(options.length_penalty)) throw Error("length_penalty must be a finite number");
}

void check_beam_search_inputs(const Model& model, const Tokenizer& tokenizer, std::span<const TokenId> prompt,
                              const BeamSearchOptions& options) {
  check_beam_search_options(options);
  check_tokenizer_matches(model, tokenizer);
  if (prompt.empty()) throw Error("the prompt is empty: beam search needs at least one token to start from");
}

namespace {

struct Beam {
  std::vector<TokenId> tokens;
  double log_probability = 0;
};

struct Candidate {
  double log_probability;  // beam's sum plus this token's log-probability
  size_t beam;
  TokenId token;
};

// Higher sum first; ties go to the lower beam, then the lower token, so the
// search is deterministic.
bool ranks_before(const Candidate& a, const Candidate& b) {
  if (a.log_probability != b.log_probability) return a.log_probability > b.log_probability;
  if (a.beam != b.beam) return a.beam < b.beam;
  return a.token < b.token;
}

double length_normalized(double log_probability, size_t length, float length_penalty) {
  return log_probability / std::pow(static_cast<double>(length), static_cast<double>(length_penalty));
}

// transformers' BeamHypotheses: the best `capacity` finished hypotheses.
class FinishedHypotheses {
 public:
  FinishedHypotheses(size_t capacity, float length_penalty) : capacity_(capacity), length_penalty_(length_penalty) {}

  size_t size() const { return hypotheses_.size(); }
  bool full() const { return hypotheses_.size() >= capacity_; }

  // The length is the number of generated tokens, EOS included
  // (transformers' `generated_len`). Among equal scores the earlier
  // hypothesis stays ahead and is the last to be dropped.
  void add(std::vector<TokenId> tokens, double log_probability) {
    const double score = length_normalized(log_probability, tokens.size(), length_penalty_);
    if (full() && !(score > worst_score())) return;
    auto position = std::upper_bound(hypotheses_.begin(), hypotheses_.end(), score,
                                     [](double s, const BeamHypothesis& h) { return s > h.score; });
    hypotheses_.insert(position, BeamHypothesis{std::move(tokens), log_probability, score});
    if (hypotheses_.size() > capacity_) hypotheses_.pop_back();
  }

  double worst_score() const { return hypotheses_.back().score; }

  // transformers' BeamHypotheses.is_done, with `best_running` the sum of the
  // best running beam and `length` the current generated length.
  bool done(double best_running, size_t length, size_t max_length, EarlyStopping early_stopping) const {
    if (!full()) return false;
    if (early_stopping == EarlyStopping::True) return true;
    // Never with a positive penalty: a running beam scores best at the
    // longest length it can reach; otherwise at the current one.
    const size_t bound_length =
        early_stopping == EarlyStopping::Never && length_penalty_ > 0.0f ? max_length : length;
    return worst_score() >= length_normalized(best_running, bound_length, length_penalty_);
  }

  std::vector<BeamHypothesis> take_best(size_t count) {
    if (hypotheses_.size() > count) hypotheses_.resize(count);
    return std::move(hypotheses_);
  }

 private:
  size_t capacity_;
  float length_penalty_;
  std::vector<BeamHypothesis> hypotheses_;  // best score first
};

// Log-softmax in double: the sums over many steps must not drift between
// implementations that see the same logits.
void log_softmax(std::span<const float> logits, std::vector<double>& out) {
  double max_logit = -std::numeric_limits<double>::infinity();
  for (float x : logits) max_logit = std::max(max_logit, static_cast<double>(x));
  double sum = 0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - max_logit);
  const double log_sum = max_logit + std::log(sum);
  out.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<double>(logits[i]) - log_sum;
}

// The best `count` candidates over all beams, ranked.
std::vector<Candidate> best_candidates(const std::vector<Beam>& beams, std::span<const float> logits,
                                       size_t vocab_size, size_t count) {
  std::vector<Candidate> ranked;
  std::vector<Candidate> of_beam;
  std::vector<double> log_probs;
  for (size_t b = 0; b < beams.size(); ++b) {
    log_softmax(logits.subspan(b * vocab_size, vocab_size), log_probs);
    of_beam.clear();
    for (size_t t = 0; t < vocab_size; ++t) {
      of_beam.push_back({beams[b].log_probability + log_probs[t], b, static_cast<TokenId>(t)});
    }
    // Only a beam's own best `count` can be among the best `count` overall.
    const size_t keep = std::min(count, of_beam.size());
    std::nth_element(of_beam.begin(), of_beam.begin() + static_cast<std::ptrdiff_t>(keep - 1), of_beam.end(),
                     ranks_before);
    ranked.insert(ranked.end(), of_beam.begin(), of_beam.begin() + static_cast<std::ptrdiff_t>(keep));
  }
  std::sort(ranked.begin(), ranked.end(), ranks_before);
  if (ranked.size() > count) ranked.resize(count);
  return ranked;
}

}  // namespace

void run_beam_pass(const BeamSearchOptions& options, const std::function<void()>& pass) {
  if (options.cancelled && options.cancelled()) throw BeamSearchCancelled();
  if (options.run_pass) {
    options.run_pass(pass);
  } else {
    pass();
  }
}

std::vector<BeamHypothesis> search_beams(BeamLogitSource& source, size_t vocab_size,
                                         const std::function<bool(TokenId)>& is_end_of_generation,
                                         const BeamSearchOptions& options) {
  check_beam_search_options(options);
  if (vocab_size == 0) throw Error("beam search needs a vocabulary of at least one token");
  const auto width = static_cast<size_t>(options.beam_width);
  const auto max_length = static_cast<size_t>(options.max_new_tokens);
  FinishedHypotheses finished(width, options.length_penalty);

  std::vector<Beam> beams(1);  // step 0: the prompt alone
  std::vector<float> logits = source.start();
  if (logits.size() != vocab_size) {
    throw Error(fmt::format("beam search: the model returned {} logits for a vocabulary of {}", logits.size(),
                            vocab_size));
  }
  for (size_t length = 1; length <= max_length; ++length) {
    const auto candidates = best_candidates(beams, logits, vocab_size, 2 * width);
    std::vector<Beam> next;
    std::vector<BeamExtension> extensions;
    for (size_t rank = 0; rank < candidates.size() && next.size() < width; ++rank) {
      const Candidate& c = candidates[rank];
      std::vector<TokenId> tokens = beams[c.beam].tokens;
      tokens.push_back(c.token);
      if (is_end_of_generation(c.token)) {
        // An EOS ranked below the first k would not have been kept as a beam.
        if (rank < width) finished.add(std::move(tokens), c.log_probability);
        continue;
      }
      next.push_back({std::move(tokens), c.log_probability});
      extensions.push_back({c.beam, c.token});
    }
    if (next.empty()) break;  // only EOS candidates left (a tiny vocabulary)
    if (length == max_length) {
      for (Beam& beam : next) finished.add(std::move(beam.tokens), beam.log_probability);
      break;
    }
    if (finished.done(next.front().log_probability, length, max_length, options.early_stopping)) break;
    logits = source.advance(extensions);
    if (logits.size() != extensions.size() * vocab_size) {
      throw Error(fmt::format("beam search: the model returned {} logits for {} beams of {} tokens", logits.size(),
                              extensions.size(), vocab_size));
    }
    beams = std::move(next);
  }
  return finished.take_best(static_cast<size_t>(options.num_return_sequences));
}

}  // namespace frugal
