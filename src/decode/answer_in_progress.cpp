#include "decode/answer_in_progress.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "frugal/error.h"

namespace frugal {

AnswerInProgress::AnswerInProgress(const Tokenizer& tokenizer, std::span<const TokenId> prompt, int64_t room,
                                   const GenerationOptions& options, ProbeOpener probe)
    : tokenizer_(tokenizer),
      sampler_(options.sampling),
      stops_(options.stop_strings),
      history_(options.preceding_tokens),
      room_(room),
      budget_(options.max_tokens < 0 ? room : options.max_tokens),
      render_special_(options.render_special),
      trimming_(options.trim_leading_space),
      thinking_(options.thinking),
      on_thinking_(options.on_thinking),
      open_probe_(std::move(probe)) {
  if (prompt.empty()) throw Error("the prompt is empty: nothing to process");
  if (thinking_.parse) splitter_.emplace(thinking_.open, thinking_.close, thinking_.starts_inside);
  if (options.grammar) {
    if (thinking_.parse && thinking_.prompt_suffix.empty()) {
      throw Error("a grammar (structured output) needs thinking off for a thinking model: the grammar would "
                  "forbid the thinking block; use --thinking off / enable_thinking: false");
    }
    if (options.ignore_eos) throw Error("a grammar cannot be combined with --ignore-eos: the answer must end");
    grammar_.emplace(options.grammar, tokenizer);
  }
  if (thinking_.exit.enabled() && !open_probe_) {
    throw Error("early exit from thinking is not available here (it needs a branchable state)");
  }
  if (thinking_.exit.enabled() && options.ignore_eos) {
    throw Error("early exit from thinking cannot be combined with --ignore-eos: a probed answer must end");
  }
  logprobs_ = options.logprobs;
  on_logprob_ = options.on_logprob;
  if (options.ignore_eos) {
    for (size_t id = 0; id < tokenizer.vocab_size(); ++id) {
      if (tokenizer.is_end_of_generation(static_cast<TokenId>(id))) end_tokens_.push_back(static_cast<TokenId>(id));
    }
  }
  if (static_cast<int64_t>(prompt.size()) >= room) {
    throw Error(fmt::format("the prompt ({} tokens) leaves no room for an answer in a context of {} tokens; "
                            "use a larger -c or a shorter prompt",
                            prompt.size(), room));
  }
  history_.insert(history_.end(), prompt.begin(), prompt.end());
  result_.prompt_tokens = prompt.size();
  result_.seed = sampler_.seed_used();
  if (budget_ == 0) finish(StopReason::MaxTokens, {});
}

std::optional<TokenId> AnswerInProgress::accept(std::span<const float> logits, const TextCallback& on_text) {
  if (finished_) throw Error("internal: a token for an answer that has ended");
  if (!forced_.empty()) {
    const TokenId token = forced_.front();
    forced_.pop_front();
    return take(token, logits, on_text);
  }
  const std::span<const float> model_logits = logits;
  if (!end_tokens_.empty()) {
    allowed_logits_.assign(logits.begin(), logits.end());
    for (const TokenId id : end_tokens_) allowed_logits_[static_cast<size_t>(id)] = -INFINITY;
    logits = allowed_logits_;
  }
  const TokenId token = sample_allowed(logits);
  const bool probing = thinking_.exit.enabled() && splitter_ && splitter_->thinking();
  // "Wait", "Alternatively": the answer is probed before the token.
  if (probing && result_.tokens.size() != last_probe_at_ && at_transition_word(token) && probe({}, on_text)) {
    return std::nullopt;
  }
  const bool blank_before = probing && splitter_->ends_with_blank_line();
  const std::optional<TokenId> next = take(token, model_logits, on_text);
  if (!next || !probing || !forced_.empty() || !splitter_->thinking()) return next;
  // A blank line just made (not more whitespace after one), or every N
  // thinking tokens: probed after the token, unless probed just before it.
  const bool every = thinking_.exit.every > 0 && thought_tokens_ % thinking_.exit.every == 0;
  const bool blank = !blank_before && splitter_->ends_with_blank_line();
  if ((blank || every) && result_.tokens.size() != last_probe_at_ + 1 && result_.tokens.size() != last_probe_at_) {
    const TokenId head[1] = {*next};
    if (probe(head, on_text)) return std::nullopt;
  }
  return next;
}

TokenId AnswerInProgress::sample_allowed(std::span<const float> logits) {
  TokenId token = sampler_.sample(logits, history_);
  if (!grammar_ || grammar_->accepts(token)) return token;
  // Sampling from the allowed tokens after a rejection gives the same
  // distribution as masking first: most steps need one check, not one per
  // token of the vocabulary.
  masked_logits_.assign(logits.begin(), logits.end());
  if (grammar_->mask(masked_logits_) == 0) {
    throw Error("the grammar allows no token of this vocabulary here (a character no token can spell?)");
  }
  token = sampler_.sample(masked_logits_, history_);
  return token;
}

std::optional<TokenId> AnswerInProgress::take(TokenId token, std::span<const float> logits,
                                              const TextCallback& on_text) {
  if (result_.tokens.empty()) first_sampled_ = std::chrono::steady_clock::now();
  result_.tokens.push_back(token);
  history_.push_back(token);
  if (grammar_) grammar_->accept(token);
  if (tokenizer_.is_end_of_generation(token)) {
    finish(StopReason::EndOfGeneration, on_text);
    return std::nullopt;
  }
  if (logprobs_ >= 0) record_logprob(logits, token);
  const bool was_thinking = splitter_ && splitter_->thinking();
  const bool was_opening = splitter_ && !splitter_->thought();
  const auto out = stops_.push(utf8_.push(tokenizer_.token_to_piece(token, render_special_)));
  if (!emit(out.text, on_text)) {
    finish(StopReason::Cancelled, on_text);
    return std::nullopt;
  }
  if (splitter_ && (was_thinking || (was_opening && splitter_->thought()))) ++result_.thinking_tokens;
  if (out.stopped) {
    finish(StopReason::StopString, on_text);
    return std::nullopt;
  }
  const auto answered = static_cast<int64_t>(result_.tokens.size());
  if (answered >= budget_) {
    finish(StopReason::MaxTokens, on_text);
    return std::nullopt;
  }
  // Fed, this token takes position prompt + answered - 1.
  if (static_cast<int64_t>(result_.prompt_tokens) + answered > room_) {
    finish(StopReason::ContextFull, on_text);
    return std::nullopt;
  }
  if (was_thinking && splitter_->thinking() && forced_.empty() && !replaying_) {
    ++thought_tokens_;
    if (thinking_.budget >= 0 && thought_tokens_ >= thinking_.budget) {
      const auto closing = closing_tokens();
      forced_.assign(closing.begin(), closing.end());
      result_.thinking_cut = true;
    }
  }
  return token;
}

std::vector<TokenId> AnswerInProgress::closing_tokens() const {
  std::vector<TokenId> tokens;
  if (!splitter_->ends_with_newline()) tokens.push_back(thinking_.newline);
  tokens.insert(tokens.end(), thinking_.close_tokens.begin(), thinking_.close_tokens.end());
  return tokens;
}

bool AnswerInProgress::at_transition_word(TokenId token) const {
  const std::string text = tokenizer_.token_to_piece(token, false);  // kept: the view below points into it
  const std::string_view piece = without_leading_space(text);
  for (const std::string_view word : {"Wait", "Alternatively", "Hmm"}) {
    // The token may be the start of the word ("Wai") or the whole word.
    if (piece.size() >= 3 && (word.starts_with(piece) || piece.starts_with(word))) return true;
  }
  return false;
}

bool AnswerInProgress::probe(std::span<const TokenId> head, const TextCallback& on_text) {
  last_probe_at_ = result_.tokens.size();
  std::vector<TokenId> fed(head.begin(), head.end());
  const auto closing = closing_tokens();
  fed.insert(fed.end(), closing.begin(), closing.end());
  const auto needed = static_cast<int64_t>(result_.prompt_tokens + result_.tokens.size() + fed.size()) +
                      thinking_.exit.max_answer_tokens;
  if (needed > room_) return false;  // no room left to probe in
  ++result_.probes;
  std::unique_ptr<ProbeBranch> branch;
  std::vector<float> logits;
  try {
    branch = open_probe_();
    logits = branch->feed(fed);
  } catch (const Error&) {
    return false;  // no room for a branch (a full store): the thinking goes on
  }
  result_.probe_tokens += fed.size();
  std::vector<TokenId> answer;
  double sum = 0, lowest = 1;
  bool ended = false;
  for (int32_t i = 0; i < thinking_.exit.max_answer_tokens; ++i) {
    const auto best = std::max_element(logits.begin(), logits.end());
    double total = 0;
    for (const float x : logits) total += std::exp(static_cast<double>(x - *best));
    const double probability = 1.0 / total;
    sum += probability;
    lowest = std::min(lowest, probability);
    const auto token = static_cast<TokenId>(best - logits.begin());
    answer.push_back(token);
    if (tokenizer_.is_end_of_generation(token)) {
      ended = true;
      break;
    }
    const TokenId one[1] = {token};
    try {
      logits = branch->feed(one);
    } catch (const Error&) {
      return false;
    }
    ++result_.probe_tokens;
  }
  const double confidence =
      thinking_.exit.measure == EarlyExit::Measure::Mean ? sum / static_cast<double>(answer.size()) : lowest;
  const size_t total = result_.tokens.size() + fed.size() - head.size() + answer.size();
  if (!ended || confidence < thinking_.exit.threshold || static_cast<int64_t>(total) > budget_) return false;
  branch->keep();
  result_.early_exit = true;
  // The kept tokens become the answer's, as if sampled (the head's first,
  // when given, was taken already).
  std::vector<TokenId> kept(fed.begin() + static_cast<std::ptrdiff_t>(head.size()), fed.end());
  kept.insert(kept.end(), answer.begin(), answer.end());
  replaying_ = true;  // the budget does not apply to what the probe already settled
  for (const TokenId token : kept) {
    if (finished_ || !take(token, {}, on_text)) break;
  }
  replaying_ = false;
  if (!finished_) finish(StopReason::EndOfGeneration, on_text);
  return true;
}

void AnswerInProgress::record_logprob(std::span<const float> logits, TokenId token) {
  if (logits.empty()) {  // a token frugal wrote on a probe's branch: no distribution of its own
    TokenLogprob entry;
    entry.token = token;
    if (on_logprob_) on_logprob_(entry);
    result_.logprobs.push_back(std::move(entry));
    return;
  }
  const float max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (const float x : logits) sum += std::exp(static_cast<double>(x) - max);
  const auto log_sum = static_cast<float>(std::log(sum)) + max;
  TokenLogprob entry;
  entry.token = token;
  entry.logprob = logits[static_cast<size_t>(token)] - log_sum;
  const size_t k = std::min(static_cast<size_t>(logprobs_), logits.size());
  std::vector<TokenId> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [&](TokenId a, TokenId b) { return logits[a] != logits[b] ? logits[a] > logits[b] : a < b; });
  for (size_t i = 0; i < k; ++i) entry.top.emplace_back(order[i], logits[static_cast<size_t>(order[i])] - log_sum);
  if (on_logprob_) on_logprob_(entry);
  result_.logprobs.push_back(std::move(entry));
}

void AnswerInProgress::finish(StopReason reason, const TextCallback& on_text) {
  if (finished_) return;
  finished_ = true;
  result_.stop_reason = reason;
  if (reason == StopReason::Cancelled) return;
  if (!stops_.stopped()) emit(stops_.push(utf8_.flush()).text + stops_.flush(), on_text);
  if (splitter_) {
    const auto rest = splitter_->flush();
    result_.thinking += rest.thinking;
    if (!rest.thinking.empty() && on_thinking_) on_thinking_(rest.thinking);
    emit_answer(rest.answer, on_text);
  }
}

// Text of the answer as sampled: split into thinking and answer for a
// thinking model.
bool AnswerInProgress::emit(std::string_view text, const TextCallback& on_text) {
  if (!splitter_) return emit_answer(text, on_text);
  if (text.empty()) return true;
  const auto pieces = splitter_->push(text);
  if (!pieces.thinking.empty()) {
    result_.thinking += pieces.thinking;
    if (on_thinking_ && !on_thinking_(pieces.thinking)) return false;
  }
  return emit_answer(pieces.answer, on_text);
}

bool AnswerInProgress::emit_answer(std::string_view text, const TextCallback& on_text) {
  if (trimming_) {
    text = without_leading_space(text);
    trimming_ = text.empty();
  }
  if (text.empty()) return true;
  result_.text += text;
  return on_text ? on_text(text) : true;
}

}  // namespace frugal
