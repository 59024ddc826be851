// Thinking models: recognising them, the user's settings, and what
// generation needs to honour them.
#include <charconv>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/thinking.h"

namespace frugal {

namespace {

constexpr std::string_view kExitForms =
    "use off, confidence:T or min-confidence:T (T from 0 to 1), optionally followed by ,every:N and ,max:N "
    "(e.g. confidence:0.9 or confidence:0.8,every:64)";

bool parse_number(std::string_view text, double& out) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size();
}

bool parse_count(std::string_view text, int32_t& out) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size() && out >= 0;
}

// The token whose text is exactly a newline (SentencePiece's byte token
// <0x0A>, byte-level BPE's "Ċ"); the lowest id if several. Found once per
// vocabulary (a server asks on every request).
TokenId newline_token(const Tokenizer& tokenizer) {
  static std::mutex mutex;
  static std::map<std::pair<const Tokenizer*, size_t>, TokenId> found;
  std::lock_guard lock(mutex);
  const auto key = std::pair{&tokenizer, tokenizer.vocab_size()};
  if (const auto it = found.find(key); it != found.end()) return it->second;
  TokenId newline = -1;
  for (size_t id = 0; id < tokenizer.vocab_size() && newline < 0; ++id) {
    if (tokenizer.token_to_piece(static_cast<TokenId>(id), false) == "\n") newline = static_cast<TokenId>(id);
  }
  return found[key] = newline;
}

}  // namespace

std::optional<ThinkingFormat> detect_thinking_format(std::string_view jinja) {
  if (jinja.find("<think>") == std::string_view::npos && jinja.find("</think>") == std::string_view::npos) {
    return std::nullopt;
  }
  ThinkingFormat format;
  // DeepSeek-R1 distills (January 2025 templates) open the block in the
  // generation prompt: "{{'<｜Assistant｜><think>\n'}}".
  format.opened_by_template = jinja.find("<｜Assistant｜><think>\\n'") != std::string_view::npos ||
                              jinja.find("<｜Assistant｜><think>\n'") != std::string_view::npos;
  return format;
}

EarlyExit parse_early_exit(std::string_view spec) {
  EarlyExit exit;
  if (spec == "off" || spec.empty()) return exit;
  size_t start = 0;
  bool first = true;
  while (start <= spec.size()) {
    const size_t comma = spec.find(',', start);
    const std::string_view part = spec.substr(start, comma == std::string_view::npos ? spec.npos : comma - start);
    const size_t colon = part.find(':');
    const std::string_view key = part.substr(0, colon);
    const std::string_view value = colon == std::string_view::npos ? std::string_view() : part.substr(colon + 1);
    if (first) {
      if (key != "confidence" && key != "min-confidence") {
        throw Error(fmt::format("early exit '{}': {}", spec, kExitForms));
      }
      exit.measure = key == "confidence" ? EarlyExit::Measure::Mean : EarlyExit::Measure::Min;
      if (!parse_number(value, exit.threshold) || exit.threshold < 0 || exit.threshold > 1) {
        throw Error(fmt::format("early exit '{}': the threshold must be a number from 0 to 1; {}", spec, kExitForms));
      }
    } else if (key == "every" || key == "max") {
      int32_t& target = key == "every" ? exit.every : exit.max_answer_tokens;
      if (!parse_count(value, target) || (key == "max" && target == 0)) {
        throw Error(fmt::format("early exit '{}': {} needs a whole number{}", spec, key, key == "max" ? " above 0" : ""));
      }
    } else {
      throw Error(fmt::format("early exit '{}': unknown part '{}'; {}", spec, part, kExitForms));
    }
    first = false;
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return exit;
}

std::string early_exit_name(const EarlyExit& exit) {
  if (!exit.enabled()) return "off";
  std::string name = fmt::format("{}:{}", exit.measure == EarlyExit::Measure::Mean ? "confidence" : "min-confidence",
                                 exit.threshold);
  if (exit.every > 0) name += fmt::format(",every:{}", exit.every);
  if (exit.max_answer_tokens != EarlyExit().max_answer_tokens) name += fmt::format(",max:{}", exit.max_answer_tokens);
  return name;
}

ThinkingSettings thinking_for_effort(std::string_view effort) {
  ThinkingSettings settings;
  if (effort == "none") {
    settings.enabled = false;
  } else if (effort == "low") {
    settings.budget = 256;
  } else if (effort == "medium") {
    settings.budget = 1024;
  } else if (effort != "high") {
    throw Error(fmt::format("reasoning_effort '{}' is not one of none, low, medium, high", effort));
  }
  return settings;
}

ThinkingOptions make_thinking_options(const std::optional<ThinkingFormat>& format, const ThinkingSettings& settings,
                                      const Tokenizer& tokenizer) {
  ThinkingOptions options;
  if (!format) {
    if (settings.enabled == true || settings.budget >= 0 || settings.exit.enabled()) {
      throw Error("this model does not think (its chat template has no <think> block): thinking settings "
                  "(--thinking on, a reasoning budget, early exit) do not apply to it");
    }
    return options;  // thinking off is what it does anyway
  }
  options.parse = true;
  options.open = format->open;
  options.close = format->close;
  options.starts_inside = format->opened_by_template;
  options.newline = newline_token(tokenizer);
  options.close_tokens = tokenizer.encode(format->close + "\n\n", false, true);
  const bool off = settings.enabled == false || settings.budget == 0;
  if (off) {
    // The empty block Qwen3's template writes for enable_thinking=false.
    const std::string block = format->opened_by_template ? format->close + "\n\n"
                                                         : format->open + "\n\n" + format->close + "\n\n";
    options.prompt_suffix = tokenizer.encode(block, false, true);
    options.starts_inside = false;
    if (settings.exit.enabled()) throw Error("early exit needs thinking on; thinking is off here");
    return options;
  }
  if (options.newline < 0) throw Error("the vocabulary has no newline token to end the thinking with");
  options.budget = settings.budget;
  options.exit = settings.exit;
  return options;
}

}  // namespace frugal
