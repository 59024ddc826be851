#include "frugal/generate.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>

#include <fmt/format.h>

#include "decode/answer_in_progress.h"
#include "frugal/error.h"

namespace frugal {

namespace {
double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

std::string_view stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::EndOfGeneration: return "eog";
    case StopReason::StopString: return "stop";
    case StopReason::MaxTokens: return "length";
    case StopReason::ContextFull: return "context";
    case StopReason::Cancelled: return "cancelled";
  }
  return "unknown";
}

std::vector<float> prefill(Model& model, KvCache& cache, std::span<const TokenId> tokens, size_t batch) {
  if (tokens.empty()) throw Error("the prompt is empty: nothing to process");
  if (batch == 0) batch = tokens.size();
  std::vector<float> logits;
  for (size_t begin = 0; begin < tokens.size(); begin += batch) {
    const size_t count = std::min(batch, tokens.size() - begin);
    logits = model.forward(tokens.subspan(begin, count), cache, false);
  }
  return logits;
}

void check_tokenizer_matches(const Model& model, const Tokenizer& tokenizer) {
  if (static_cast<int64_t>(tokenizer.vocab_size()) != model.config().vocab_size) {
    throw FormatError(fmt::format("{}: the tokenizer has {} tokens but the model's embedding has {} rows",
                                  model.file().source_name(), tokenizer.vocab_size(), model.config().vocab_size));
  }
}

void check_context_shift_keep(const GenerationOptions& options, int64_t context) {
  if (options.context_shift_keep < 0 || options.context_shift_keep > context - 2) {
    throw Error(fmt::format("--keep {} leaves nothing to forget in a context of {} tokens; keep at most {}",
                            options.context_shift_keep, context, std::max<int64_t>(context - 2, 0)));
  }
}

GenerationResult generate(Model& model, const Tokenizer& tokenizer, KvCache& cache, std::span<const TokenId> given,
                          const GenerationOptions& given_options, const TextCallback& on_text) {
  check_tokenizer_matches(model, tokenizer);
  // The thinking-off block is part of the prompt for every check below.
  const std::vector<TokenId> full_prompt = prompt_with_thinking(given, given_options);
  const std::span<const TokenId> prompt = full_prompt;
  GenerationOptions options = given_options;
  options.thinking.prompt_suffix.clear();
  if (options.context_shift) check_context_shift_keep(options, cache.capacity());
  size_t shifts = 0;
  // With context shift on, room for `tokens` more: keep the first tokens,
  // forget at least half of the rest (fewer shifts, each costing a pass
  // over the cache) and at least what is needed.
  const auto make_room = [&](int64_t tokens) {
    if (!options.context_shift || cache.size() + tokens <= cache.capacity()) return;
    const int64_t keep = std::clamp<int64_t>(options.context_shift_keep, 0, cache.size());
    const int64_t discard = std::max((cache.size() - keep) / 2, cache.size() + tokens - cache.capacity());
    if (keep + discard > cache.size()) return;  // the check below says what does not fit
    model.shift_context(cache, keep, discard);
    ++shifts;
  };
  make_room(static_cast<int64_t>(prompt.size()) + 1);
  if (cache.size() + static_cast<int64_t>(prompt.size()) >= cache.capacity()) {
    throw Error(fmt::format("the prompt ({} tokens) does not fit in the context of {} tokens; use a larger -c",
                            cache.size() + static_cast<int64_t>(prompt.size()), cache.capacity()));
  }
  if (options.context_shift && options.thinking.exit.enabled()) {
    throw Error("early exit from thinking cannot be combined with context shift");
  }
  bool prompt_done = false;
  const TokenFeed feed = [&](std::span<const TokenId> tokens) {
    if (!prompt_done) {
      prompt_done = true;
      return prefill(model, cache, tokens, options.prompt_batch);
    }
    make_room(static_cast<int64_t>(tokens.size()));
    return model.forward(tokens, cache, false);
  };
  // Shifting, the context never fills: the token budget or the answer's own
  // end stops it.
  const int64_t room = options.context_shift ? std::numeric_limits<int64_t>::max() / 2 : cache.capacity() - cache.size();
  // A probe runs on the cache itself and is cut off again unless kept.
  class CacheProbe final : public ProbeBranch {
   public:
    CacheProbe(Model& model, KvCache& cache) : model_(model), cache_(cache), start_(cache.size()) {}
    ~CacheProbe() override {
      if (!kept_) cache_.truncate(start_);
    }
    std::vector<float> feed(std::span<const TokenId> tokens) override {
      if (cache_.size() + static_cast<int64_t>(tokens.size()) > cache_.capacity()) {
        throw Error("the context is full: no room left to probe an answer; use a larger -c");
      }
      return model_.forward(tokens, cache_, false);
    }
    void keep() override { kept_ = true; }

   private:
    Model& model_;
    KvCache& cache_;
    int64_t start_;
    bool kept_ = false;
  };
  const ProbeOpener probe = [&] { return std::make_unique<CacheProbe>(model, cache); };
  GenerationResult result = generate(feed, tokenizer, prompt, room, options, on_text, probe);
  result.context_shifts = shifts;
  return result;
}

std::vector<TokenId> prompt_with_thinking(std::span<const TokenId> prompt, const GenerationOptions& options) {
  std::vector<TokenId> tokens(prompt.begin(), prompt.end());
  const auto& suffix = options.thinking.prompt_suffix;
  tokens.insert(tokens.end(), suffix.begin(), suffix.end());
  return tokens;
}

GenerationResult generate(const TokenFeed& feed, const Tokenizer& tokenizer, std::span<const TokenId> prompt,
                          int64_t room, const GenerationOptions& options, const TextCallback& on_text,
                          const ProbeOpener& probe) {
  const std::vector<TokenId> tokens = prompt_with_thinking(prompt, options);
  AnswerInProgress answer(tokenizer, tokens, room, options, probe);
  GenerationResult& result = answer.result();
  const auto call_start = std::chrono::steady_clock::now();
  std::vector<float> logits = feed(tokens);
  result.prompt_seconds = seconds_since(call_start);
  const auto start = std::chrono::steady_clock::now();
  while (!answer.finished()) {
    const std::optional<TokenId> next = answer.accept(logits, on_text);
    if (!next) break;
    const TokenId token[1] = {*next};
    logits = feed(token);
  }
  result.generation_seconds = seconds_since(start);
  if (!result.tokens.empty()) {
    result.first_token_seconds = std::chrono::duration<double>(answer.first_sampled() - call_start).count();
  }
  return std::move(result);
}

}  // namespace frugal
