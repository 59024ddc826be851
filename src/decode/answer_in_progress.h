// One answer while it grows, token by token: the part of generation that is
// the same however the model is run (one KvCache in generate(), a shared
// KvTrie in GenerationScheduler). Keeping it in one place makes a scheduled
// answer end exactly where the plain loop's does.
#pragma once

#include <chrono>
#include <deque>
#include <optional>
#include <span>

#include "frugal/generate.h"
#include "frugal/generation_text.h"
#include "frugal/sampler.h"
#include "frugal/tokenizer.h"

namespace frugal {

class AnswerInProgress {
 public:
  // `room`: the positions the context has for the prompt and the answer
  // (the prompt must be shorter). The options are copied.
  // `probe` opens branches of the answer's state for early-exit probes.
  AnswerInProgress(const Tokenizer& tokenizer, std::span<const TokenId> prompt, int64_t room,
                   const GenerationOptions& options, ProbeOpener probe = {});

  // Samples the next token from the logits of the last token fed and
  // passes the text that is safe to print to `on_text` (false from it
  // cancels). Returns the token to feed next, or nothing when the answer is
  // over (result().stop_reason says why; the last token is never fed:
  // nobody would read its logits). Tokens frugal writes itself (the end of
  // thinking at a budget) are returned in turn, whatever the logits; an
  // early-exit probe runs inside, on a branch, and a kept probe ends the
  // answer.
  std::optional<TokenId> accept(std::span<const float> logits, const TextCallback& on_text);

  // Ends the answer for `reason` unless it has ended: text held back
  // (incomplete UTF-8, a possible stop string) goes out unless cancelled.
  void finish(StopReason reason, const TextCallback& on_text);

  bool finished() const { return finished_; }
  // When the first token was sampled (before its text went out): the end of
  // the time to first token.
  std::chrono::steady_clock::time_point first_sampled() const { return first_sampled_; }
  GenerationResult& result() { return result_; }

 private:
  // Appends `text` to the result and passes it on (trimmed while the answer
  // has shown nothing yet, if asked to); returns on_text's verdict.
  bool emit(std::string_view text, const TextCallback& on_text);
  bool emit_answer(std::string_view text, const TextCallback& on_text);
  void record_logprob(std::span<const float> logits, TokenId token);
  // Records `token` as the answer's next: text, stops, budgets. Returns it
  // when it is to be fed, nothing when the answer has ended.
  std::optional<TokenId> take(TokenId token, std::span<const float> logits, const TextCallback& on_text);
  // The end of thinking frugal writes: a newline unless the thinking ends
  // with one, then the close marker and a blank line.
  std::vector<TokenId> closing_tokens() const;
  bool at_transition_word(TokenId token) const;
  // The sampled token, or (when the grammar rejects it) one sampled again
  // from the logits the grammar allows.
  TokenId sample_allowed(std::span<const float> logits);
  // Probes an answer after `head` (tokens not yet in the state); true when
  // it was kept (the answer has ended).
  bool probe(std::span<const TokenId> head, const TextCallback& on_text);

  const Tokenizer& tokenizer_;
  Sampler sampler_;
  StopStringMatcher stops_;
  Utf8StreamBuffer utf8_;
  int32_t logprobs_ = -1;
  std::function<void(const TokenLogprob&)> on_logprob_;
  std::vector<TokenId> end_tokens_;   // never sampled (GenerationOptions::ignore_eos)
  std::vector<float> allowed_logits_;  // the logits without them
  std::vector<TokenId> history_;  // earlier tokens, prompt and answer: what the repetition penalty sees
  int64_t room_ = 0;
  int64_t budget_ = 0;  // answer tokens allowed
  bool render_special_ = false;
  bool trimming_ = false;  // still dropping leading spaces
  std::chrono::steady_clock::time_point first_sampled_{};
  bool finished_ = false;
  GenerationResult result_;
  ThinkingOptions thinking_;
  std::optional<ThinkingSplitter> splitter_;
  std::optional<GrammarMatcher> grammar_;
  std::vector<float> masked_logits_;
  std::function<bool(std::string_view)> on_thinking_;
  ProbeOpener open_probe_;
  std::deque<TokenId> forced_;   // tokens frugal writes next
  int64_t thought_tokens_ = 0;   // thinking tokens sampled (the budget counts these)
  size_t last_probe_at_ = SIZE_MAX;  // answer length at the last probe
  bool replaying_ = false;           // taking a kept probe's tokens
};

}  // namespace frugal
