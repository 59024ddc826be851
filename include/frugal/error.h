// Errors raised by frugal. Every error says what went wrong and, where it
// helps, what to do about it; they are caught at the CLI/server edge.
#pragma once

#include <stdexcept>
#include <string>

namespace frugal {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// A file that is not what it claims to be (bad magic, truncated, corrupt).
class FormatError : public Error {
 public:
  using Error::Error;
};

// Valid input that this build does not support (unknown architecture,
// tensor type, tokenizer, chat template).
class UnsupportedError : public Error {
 public:
  using Error::Error;
};

}  // namespace frugal
