#include "support/cli_runner.h"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/test_paths.h"

namespace frugal::test {

namespace {

std::string quote(const std::string& arg) {
  std::string q = "'";
  for (char c : arg) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

CommandResult run_frugal(const std::vector<std::string>& args, const std::string& input) {
  const auto dir = scratch_dir("cli");
  std::string command = quote(frugal_binary().string());
  for (const auto& a : args) command += " " + quote(a);
  std::string stdin_path = "/dev/null";
  if (!input.empty()) {
    stdin_path = (dir / "stdin").string();
    std::ofstream(stdin_path, std::ios::binary) << input;
  }
  command += " 2>" + quote((dir / "stderr").string()) + " <" + quote(stdin_path);
  CommandResult result;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.out.append(buffer.data(), n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream err(dir / "stderr");
  std::stringstream text;
  text << err.rdbuf();
  result.err = text.str();
  std::filesystem::remove_all(dir);
  return result;
}

}  // namespace frugal::test
