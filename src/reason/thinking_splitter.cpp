// Splitting a streamed answer into its thinking and the answer proper.
#include <algorithm>

#include "frugal/thinking.h"

namespace frugal {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view drop_leading_space(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && is_space(text[i])) ++i;
  return text.substr(i);
}

std::string_view drop_trailing_space(std::string_view text) {
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

// Length of the longest suffix of `text` that is a proper prefix of `marker`.
size_t partial_marker(std::string_view text, std::string_view marker) {
  for (size_t n = std::min(text.size(), marker.size() - 1); n > 0; --n) {
    if (text.substr(text.size() - n) == marker.substr(0, n)) return n;
  }
  return 0;
}

// Drops spaces and tabs (not newlines) at the end.
std::string_view drop_trailing_blanks(std::string_view text) {
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

}  // namespace

ThinkingSplitter::ThinkingSplitter(std::string open, std::string close, bool starts_inside)
    : open_(std::move(open)), close_(std::move(close)), state_(starts_inside ? State::Thinking : State::Start),
      thought_(starts_inside) {}

ThinkingSplitter::Pieces ThinkingSplitter::push(std::string_view text) {
  Pieces out;
  held_.append(text);
  if (state_ == State::Start) {
    const std::string_view rest = drop_leading_space(held_);
    if (rest.empty()) {
      held_.clear();
      return out;
    }
    if (rest.size() < open_.size() && open_.compare(0, rest.size(), rest) == 0) return out;  // maybe the marker
    const bool opens = rest.compare(0, open_.size(), open_) == 0;
    state_ = opens ? State::Thinking : State::Answer;
    thought_ = opens;
    held_ = std::string(opens ? rest.substr(open_.size()) : rest);
  }
  if (state_ == State::Thinking) {
    const size_t close = held_.find(close_);
    std::string_view thinking = held_;
    size_t consumed = 0;
    if (close != std::string::npos) {
      thinking = drop_trailing_space(thinking.substr(0, close));
      consumed = close + close_.size();
    } else {
      // Hold back a possible marker start and the whitespace before it (it
      // may be the whitespace before the close marker).
      size_t cut = held_.size() - partial_marker(held_, close_);
      while (cut > 0 && is_space(held_[cut - 1])) --cut;
      thinking = thinking.substr(0, cut);
      consumed = cut;
    }
    tail_ = (tail_ + std::string(held_.substr(0, consumed)));
    if (tail_.size() > 16) tail_.erase(0, tail_.size() - 16);
    if (!thinking_started_) thinking = drop_leading_space(thinking);
    if (!thinking.empty()) thinking_started_ = true;
    out.thinking.assign(thinking);
    held_.erase(0, consumed);
    if (close == std::string::npos) return out;
    state_ = State::Answer;
  }
  // The answer: everything, its leading whitespace dropped.
  std::string_view answer = held_;
  if (!answer_started_) answer = drop_leading_space(answer);
  if (!answer.empty()) answer_started_ = true;
  out.answer.assign(answer);
  held_.clear();
  return out;
}

ThinkingSplitter::Pieces ThinkingSplitter::flush() {
  Pieces out;
  if (state_ == State::Start) {
    out.answer.assign(drop_trailing_space(drop_leading_space(held_)));
  } else if (state_ == State::Thinking) {
    std::string_view thinking = drop_trailing_space(held_);
    if (!thinking_started_) thinking = drop_leading_space(thinking);
    out.thinking.assign(thinking);
  }
  held_.clear();
  return out;
}

bool ThinkingSplitter::ends_with_newline() const {
  const std::string text = tail_ + held_;
  const std::string_view trimmed = drop_trailing_blanks(text);
  return !trimmed.empty() && trimmed.back() == '\n';
}

bool ThinkingSplitter::ends_with_blank_line() const {
  const std::string text = tail_ + held_;
  std::string_view trimmed = drop_trailing_blanks(text);
  if (trimmed.empty() || trimmed.back() != '\n') return false;
  trimmed.remove_suffix(1);
  trimmed = drop_trailing_blanks(trimmed);
  return !trimmed.empty() && trimmed.back() == '\n';
}

}  // namespace frugal
