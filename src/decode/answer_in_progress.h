// One answer while it grows, token by token: the part of generation that is
// the same however the model is run (one KvCache in generate(), a shared
// KvTrie in GenerationScheduler). Keeping it in one place makes a scheduled
// answer end exactly where the plain loop's does.
#pragma once

#include <chrono>
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
  AnswerInProgress(const Tokenizer& tokenizer, std::span<const TokenId> prompt, int64_t room,
                   const GenerationOptions& options);

  // Samples the next token from the logits of the last token fed and
  // passes the text that is safe to print to `on_text` (false from it
  // cancels). Returns the token to feed next, or nothing when the answer is
  // over (result().stop_reason says why; the last token is never fed:
  // nobody would read its logits).
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
  void record_logprob(std::span<const float> logits, TokenId token);

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
};

}  // namespace frugal
