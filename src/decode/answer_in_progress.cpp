#include "decode/answer_in_progress.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "frugal/error.h"

namespace frugal {

AnswerInProgress::AnswerInProgress(const Tokenizer& tokenizer, std::span<const TokenId> prompt, int64_t room,
                                   const GenerationOptions& options)
    : tokenizer_(tokenizer),
      sampler_(options.sampling),
      stops_(options.stop_strings),
      history_(options.preceding_tokens),
      room_(room),
      budget_(options.max_tokens < 0 ? room : options.max_tokens),
      render_special_(options.render_special),
      trimming_(options.trim_leading_space) {
  if (prompt.empty()) throw Error("the prompt is empty: nothing to process");
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
  const std::span<const float> model_logits = logits;
  if (!end_tokens_.empty()) {
    allowed_logits_.assign(logits.begin(), logits.end());
    for (const TokenId id : end_tokens_) allowed_logits_[static_cast<size_t>(id)] = -INFINITY;
    logits = allowed_logits_;
  }
  const TokenId token = sampler_.sample(logits, history_);
  if (result_.tokens.empty()) first_sampled_ = std::chrono::steady_clock::now();
  result_.tokens.push_back(token);
  history_.push_back(token);
  if (tokenizer_.is_end_of_generation(token)) {
    finish(StopReason::EndOfGeneration, on_text);
    return std::nullopt;
  }
  if (logprobs_ >= 0) record_logprob(model_logits, token);
  const auto out = stops_.push(utf8_.push(tokenizer_.token_to_piece(token, render_special_)));
  if (!emit(out.text, on_text)) {
    finish(StopReason::Cancelled, on_text);
    return std::nullopt;
  }
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
  return token;
}

void AnswerInProgress::record_logprob(std::span<const float> logits, TokenId token) {
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
  if (reason == StopReason::Cancelled || stops_.stopped()) return;
  emit(stops_.push(utf8_.flush()).text + stops_.flush(), on_text);
}

bool AnswerInProgress::emit(std::string_view text, const TextCallback& on_text) {
  if (trimming_) {
    text = without_leading_space(text);
    trimming_ = text.empty();
  }
  if (text.empty()) return true;
  result_.text += text;
  return on_text ? on_text(text) : true;
}

}  // namespace frugal
