// Text generation: prompt processing in batches, sampling, streaming text
// out, and stopping on end-of-generation tokens, stop strings or a token
// budget.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/grammar.h"
#include "frugal/model.h"
#include "frugal/sampler.h"
#include "frugal/thinking.h"
#include "frugal/tokenizer.h"

namespace frugal {

// A sampled token's log-probability under the model (log-softmax of its
// logits, before temperature, penalties or masks) and the most likely
// tokens at that step with theirs.
struct TokenLogprob {
  TokenId token = -1;
  float logprob = 0;
  std::vector<std::pair<TokenId, float>> top;  // most likely first
};

struct GenerationOptions {
  int32_t max_tokens = 256;  // < 0: until the context is full
  SamplingParams sampling;
  std::vector<std::string> stop_strings;
  bool render_special = false;   // print control tokens as text
  size_t prompt_batch = 512;     // tokens per forward pass while reading the prompt
  // Tokens already in the cache before the prompt (e.g. a knowledge prefix):
  // the repetition penalty looks back over them as over the prompt, so a
  // continued cache samples as the same prompt processed from scratch would.
  std::vector<TokenId> preceding_tokens;
  // Drop the spaces and tabs before the answer's first visible text (the
  // tokens stay as sampled): an answer after "Answer:" starts with a space
  // that belongs to the prompt's format, not to the answer.
  bool trim_leading_space = false;
  // Never sample an end-of-generation token (llama.cpp's --ignore-eos):
  // text runs to the token budget or a stop string (benchmarks, long runs).
  bool ignore_eos = false;
  // Context shift (StreamingLLM) for generate() over a KvCache: when the
  // cache is full, keep its first `context_shift_keep` tokens (attention
  // sinks), forget the older half of the rest and go on (Model::
  // shift_context) instead of stopping with ContextFull; a later prompt
  // that does not fit makes room the same way. max_tokens < 0 then means
  // until an end-of-generation token or a stop string.
  bool context_shift = false;
  int64_t context_shift_keep = 4;
  // >= 0: record each answer token's TokenLogprob (end-of-generation tokens
  // excepted) with this many alternatives, and call on_logprob with it
  // before the token's text is passed on.
  int32_t logprobs = -1;
  std::function<void(const TokenLogprob&)> on_logprob{};
  // Thinking models (make_thinking_options): the thinking goes to
  // GenerationResult::thinking and on_thinking instead of the answer's
  // text; budgets and early exit as the options say.
  ThinkingOptions thinking;
  std::function<bool(std::string_view)> on_thinking{};  // false cancels, like the answer's callback
  // Constrained decoding: every token keeps the answer a prefix of a
  // sentence of this grammar, and the answer ends only where the grammar
  // may (include/frugal/grammar.h, json_schema.h). Not with thinking on.
  std::shared_ptr<const Grammar> grammar{};
};

// A throwaway continuation of an answer's state (early-exit probes): tokens
// fed to it reach the answer's state only if it is kept; dropped (the
// destructor) it leaves that state as it was.
class ProbeBranch {
 public:
  virtual ~ProbeBranch() = default;
  // Runs `tokens` after what the branch holds; the logits of the last.
  virtual std::vector<float> feed(std::span<const TokenId> tokens) = 0;
  // The branch becomes the answer's state.
  virtual void keep() = 0;
};
using ProbeOpener = std::function<std::unique_ptr<ProbeBranch>()>;

// Throws Error when options ask for a context shift that keeps so many
// tokens that a context of `context` has nothing left to forget.
void check_context_shift_keep(const GenerationOptions& options, int64_t context);

enum class StopReason { EndOfGeneration, StopString, MaxTokens, ContextFull, Cancelled };
std::string_view stop_reason_name(StopReason reason);

struct GenerationResult {
  std::vector<TokenId> tokens;  // generated tokens (including a final EOG token)
  std::string text;             // printed text (stop string and EOG excluded)
  StopReason stop_reason = StopReason::MaxTokens;
  size_t prompt_tokens = 0;
  // Prompt tokens whose keys and values were found already stored (a
  // batching server's knowledge caches and prefix cache) and not read again.
  size_t cached_tokens = 0;
  double prompt_seconds = 0;
  double first_token_seconds = 0;  // from the call to the first sampled token (time to first token)
  // Energy of this answer where it was measured (RAPL): a batching server
  // gives each answer its share of every step, by tokens fed. Negative: not
  // measured.
  double energy_joules = -1;
  double generation_seconds = 0;
  uint64_t seed = 0;  // the sampler's seed (the drawn one for a random seed), to repeat a run
  size_t context_shifts = 0;  // times the context was shifted (GenerationOptions::context_shift)
  std::vector<TokenLogprob> logprobs;  // when GenerationOptions::logprobs >= 0
  // Thinking models: the thinking text (markers and surrounding whitespace
  // left out; `text` is then the answer alone), the tokens from its open
  // marker to its close marker, whether frugal ended it (budget or early
  // exit), and the early-exit probes with the tokens they ran on branches
  // (part of the cost; a kept probe's tokens are also the answer's).
  std::string thinking;
  size_t thinking_tokens = 0;
  bool thinking_cut = false;
  bool early_exit = false;
  size_t probes = 0;
  size_t probe_tokens = 0;
};

// Called with each piece of text as soon as it is safe to print; return false
// to cancel.
using TextCallback = std::function<bool(std::string_view)>;

// Feeds `prompt` after whatever `cache` already holds, then generates.
// Afterwards the cache holds the prompt and every generated token but the
// last (whatever the stop reason), so a conversation continues by feeding
// `result.tokens.back()` first.
GenerationResult generate(Model& model, const Tokenizer& tokenizer, KvCache& cache, std::span<const TokenId> prompt,
                          const GenerationOptions& options, const TextCallback& on_text = {});

// Runs tokens through some model state (a KvCache, a KvTrie branch...) and
// returns the logits of the last one.
using TokenFeed = std::function<std::vector<float>(std::span<const TokenId> tokens)>;

// The same loop over any state: `feed` gets the prompt once, then each
// sampled token but the last; `room` is how many tokens it can take in all.
// `probe` opens branches for early exit (required when options ask for it).
GenerationResult generate(const TokenFeed& feed, const Tokenizer& tokenizer, std::span<const TokenId> prompt,
                          int64_t room, const GenerationOptions& options, const TextCallback& on_text = {},
                          const ProbeOpener& probe = {});

// The prompt as it is fed: `prompt` and options.thinking.prompt_suffix.
std::vector<TokenId> prompt_with_thinking(std::span<const TokenId> prompt, const GenerationOptions& options);

// Throws FormatError when the tokenizer's vocabulary does not match the
// model's embedding (a vocabulary file paired with the wrong model).
void check_tokenizer_matches(const Model& model, const Tokenizer& tokenizer);

// Runs `tokens` through the model in batches of at most `batch` tokens;
// returns the logits of the last token.
std::vector<float> prefill(Model& model, KvCache& cache, std::span<const TokenId> tokens, size_t batch);

}  // namespace frugal
