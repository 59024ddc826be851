// Runs the frugal binary in a shell, capturing stdout, stderr and the exit
// code (for the end-to-end CLI tests).
#pragma once

#include <string>
#include <vector>

namespace frugal::test {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// `input` is fed to the command's stdin (empty: /dev/null).
CommandResult run_frugal(const std::vector<std::string>& args, const std::string& input = "");

}  // namespace frugal::test
