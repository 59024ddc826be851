// Text-level pieces of generation: stopping on user-given stop strings while
// streaming output.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace frugal {

// Watches streamed text for stop strings. Text that could still turn out to
// be the start of a stop string is held back until it is known either way,
// so a stop string is never printed, even in part.
class StopStringMatcher {
 public:
  struct Output {
    std::string text;      // safe to print now
    bool stopped = false;  // a stop string was hit: generation should end
  };

  // Empty stop strings are ignored.
  explicit StopStringMatcher(std::vector<std::string> stop_strings);

  // Feeds the next piece of generated text. On a hit, `text` is everything
  // before the (earliest) stop string and `stopped` is true; anything after
  // it is dropped, and later calls return nothing.
  Output push(std::string_view piece);
  // Generation ended for another reason: releases the held-back text.
  std::string flush();

  bool stopped() const { return stopped_; }
  const std::vector<std::string>& stop_strings() const { return stop_strings_; }

 private:
  // Length of the longest suffix of `held_` that is a proper prefix of some
  // stop string.
  size_t partial_match_length() const;

  std::vector<std::string> stop_strings_;
  std::string held_;  // text not yet released
  bool stopped_ = false;
};

// `text` without its leading spaces and tabs: an answer written after
// "Answer:" starts with a space that belongs to the prompt's format.
std::string_view without_leading_space(std::string_view text);

}  // namespace frugal
