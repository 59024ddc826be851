#include <algorithm>

#include "frugal/generation_text.h"

namespace frugal {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stop_strings) {
  for (std::string& stop : stop_strings) {
    if (!stop.empty()) stop_strings_.push_back(std::move(stop));
  }
}

StopStringMatcher::Output StopStringMatcher::push(std::string_view piece) {
  Output output;
  if (stopped_) {
    output.stopped = true;
    return output;
  }
  held_.append(piece);

  // Held text never contains a whole stop string, so searching all of it
  // finds stop strings that straddle earlier pieces and this one.
  size_t earliest = std::string::npos;
  for (const std::string& stop : stop_strings_) {
    earliest = std::min(earliest, held_.find(stop));
  }
  if (earliest != std::string::npos) {
    output.text = held_.substr(0, earliest);
    output.stopped = true;
    stopped_ = true;
    held_.clear();
    return output;
  }

  size_t keep = partial_match_length();
  output.text = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return output;
}

std::string StopStringMatcher::flush() {
  std::string rest = std::move(held_);
  held_.clear();
  return rest;
}

size_t StopStringMatcher::partial_match_length() const {
  size_t longest = 0;
  for (const std::string& stop : stop_strings_) {
    size_t max_length = std::min(stop.size() - 1, held_.size());
    for (size_t length = max_length; length > longest; --length) {
      if (std::string_view(held_).substr(held_.size() - length) ==
          std::string_view(stop).substr(0, length)) {
        longest = length;
        break;
      }
    }
  }
  return longest;
}

std::string_view without_leading_space(std::string_view text) {
  const size_t first = text.find_first_not_of(" \t");
  return text.substr(first == std::string_view::npos ? text.size() : first);
}

}  // namespace frugal
