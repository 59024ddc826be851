// Thinking (`<think>...</think>` before the answer): recognising models
// that think, turning it on and off, capping it (budget forcing) and ending
// it early when a probed answer is already confident (the DEER idea).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/tokenizer.h"

namespace frugal {

// How a model marks its thinking.
struct ThinkingFormat {
  std::string open = "<think>";
  std::string close = "</think>";
  // The generation prompt already opens the block (DeepSeek-R1 distills'
  // newer templates end with "<think>\n"): the model starts inside it.
  bool opened_by_template = false;
};

// Recognises a thinking model from its Jinja chat template (it writes or
// strips "<think>" / "</think>"); nullopt for other templates.
std::optional<ThinkingFormat> detect_thinking_format(std::string_view jinja_template);

// When to stop thinking early: at a transition point of the thinking (a
// blank line, or a token starting "Wait", "Alternatively", "Hmm", or every
// `every` thinking tokens) an answer is probed on a throwaway branch: the end
// of thinking is appended and the answer decoded greedily. If it ends within
// `max_answer_tokens` and its confidence (the mean or the lowest probability
// of its tokens, end token included) reaches `threshold`, that answer is
// kept and the thinking stops.
struct EarlyExit {
  enum class Measure { Mean, Min };
  double threshold = -1;  // < 0: off
  Measure measure = Measure::Mean;
  int32_t max_answer_tokens = 48;
  int32_t every = 0;  // also probe every this many thinking tokens (0: only at transitions)
  bool enabled() const { return threshold >= 0; }
};

// "off", "confidence:T" (mean probability), "min-confidence:T" (lowest), each
// optionally followed by ",every:N" and ",max:N". Throws Error saying the
// accepted forms.
EarlyExit parse_early_exit(std::string_view spec);
std::string early_exit_name(const EarlyExit& exit);

// What a user asks for (CLI flags, request fields).
struct ThinkingSettings {
  std::optional<bool> enabled;  // nullopt: the model's default (thinking)
  int32_t budget = -1;          // thinking tokens allowed; < 0: no limit; 0: thinking off
  EarlyExit exit;
};

// reasoning_effort: "none" (off), "low" (256 tokens), "medium" (1024),
// "high" (no limit). Throws Error for other values.
ThinkingSettings thinking_for_effort(std::string_view effort);

// What generation does about thinking (GenerationOptions::thinking).
struct ThinkingOptions {
  bool parse = false;  // split the thinking from the answer
  std::string open = "<think>", close = "</think>";
  bool starts_inside = false;  // the prompt opened the block
  // Appended to the prompt: the empty thinking block that turns thinking off.
  std::vector<TokenId> prompt_suffix;
  // Written by frugal to end the thinking (budget cut, early exit): the
  // close marker and the blank line after it; a newline first when the
  // thinking does not end with one.
  std::vector<TokenId> close_tokens;
  TokenId newline = -1;
  int32_t budget = -1;
  EarlyExit exit;
};

// Options for a thinking model (format) as the settings ask; with no format
// (the model does not think) settings that ask for thinking control throw
// Error, and the result parses nothing.
ThinkingOptions make_thinking_options(const std::optional<ThinkingFormat>& format, const ThinkingSettings& settings,
                                      const Tokenizer& tokenizer);

// Splits a stream of answer text into thinking and answer as it arrives:
// text before the open marker is the answer (the model did not think);
// after it, everything up to the close marker is thinking. Whitespace
// around the markers is dropped; a marker split across pieces is held back
// until it is whole.
class ThinkingSplitter {
 public:
  ThinkingSplitter(std::string open, std::string close, bool starts_inside);
  struct Pieces {
    std::string thinking, answer;
  };
  Pieces push(std::string_view text);
  Pieces flush();  // the end: whatever was held back
  bool thinking() const { return state_ == State::Thinking; }
  bool thought() const { return thought_; }  // a thinking block was opened
  bool answering() const { return state_ == State::Answer; }
  // The thinking so far ends with a newline (trailing whitespace held back counts).
  bool ends_with_newline() const;
  bool ends_with_blank_line() const;

 private:
  enum class State { Start, Thinking, Answer };
  std::string open_, close_;
  State state_;
  bool thought_ = false;
  bool answer_started_ = false;    // leading whitespace of the answer dropped
  bool thinking_started_ = false;  // leading whitespace of the thinking dropped
  std::string held_;               // a possible marker prefix, or whitespace not yet known to be inner
  std::string tail_;               // last characters of the thinking (for transition points)
};

}  // namespace frugal
