#include "frugal/generate.h"

#include <chrono>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/generation_text.h"

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

GenerationResult generate(Model& model, const Tokenizer& tokenizer, KvCache& cache, std::span<const TokenId> prompt,
                          const GenerationOptions& options, const TextCallback& on_text) {
  check_tokenizer_matches(model, tokenizer);
  if (cache.size() + static_cast<int64_t>(prompt.size()) >= cache.capacity()) {
    throw Error(fmt::format("the prompt ({} tokens) does not fit in the context of {} tokens; use a larger -c",
                            cache.size() + static_cast<int64_t>(prompt.size()), cache.capacity()));
  }
  bool prompt_done = false;
  const TokenFeed feed = [&](std::span<const TokenId> tokens) {
    if (!prompt_done) {
      prompt_done = true;
      return prefill(model, cache, tokens, options.prompt_batch);
    }
    return model.forward(tokens, cache, false);
  };
  return generate(feed, tokenizer, prompt, cache.capacity() - cache.size(), options, on_text);
}

GenerationResult generate(const TokenFeed& feed, const Tokenizer& tokenizer, std::span<const TokenId> prompt,
                          int64_t room, const GenerationOptions& options, const TextCallback& on_text) {
  GenerationResult result;
  result.prompt_tokens = prompt.size();
  if (static_cast<int64_t>(prompt.size()) >= room) {
    throw Error(fmt::format("the prompt ({} tokens) does not fit in the {} tokens of context left; use a larger -c",
                            prompt.size(), room));
  }
  Sampler sampler(options.sampling);
  result.seed = sampler.seed_used();
  StopStringMatcher stops(options.stop_strings);
  Utf8StreamBuffer utf8;
  std::vector<TokenId> history(options.preceding_tokens);
  history.insert(history.end(), prompt.begin(), prompt.end());

  auto emit = [&](const std::string& text) {
    if (text.empty()) return true;
    result.text += text;
    return on_text ? on_text(text) : true;
  };

  const auto call_start = std::chrono::steady_clock::now();
  auto start = call_start;
  std::vector<float> logits = feed(prompt);
  int64_t fed = static_cast<int64_t>(prompt.size());
  result.prompt_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();

  const int64_t budget = options.max_tokens < 0 ? room : options.max_tokens;
  bool cancelled = false;
  for (int64_t step = 0; step < budget; ++step) {
    const TokenId token = sampler.sample(logits, history);
    if (step == 0) result.first_token_seconds = seconds_since(call_start);
    result.tokens.push_back(token);
    history.push_back(token);
    if (tokenizer.is_end_of_generation(token)) {
      result.stop_reason = StopReason::EndOfGeneration;
      break;
    }
    const auto out = stops.push(utf8.push(tokenizer.token_to_piece(token, options.render_special)));
    if (!emit(out.text)) {
      cancelled = true;
      result.stop_reason = StopReason::Cancelled;
      break;
    }
    if (out.stopped) {
      result.stop_reason = StopReason::StopString;
      break;
    }
    // The last token is never fed back: nobody would read its logits.
    if (step + 1 == budget) break;
    if (fed >= room) {
      result.stop_reason = StopReason::ContextFull;
      break;
    }
    const TokenId next[1] = {token};
    logits = feed(next);
    ++fed;
  }
  if (!cancelled && !stops.stopped()) emit(stops.push(utf8.flush()).text + stops.flush());
  result.generation_seconds = seconds_since(start);
  return result;
}

}  // namespace frugal
