#include "cli/arguments.h"

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <fmt/format.h>

#include "frugal/atomic_file.h"
#include "frugal/error.h"

namespace frugal::cli {

namespace fs = std::filesystem;

namespace {

bool parses_as_double(const std::string& text, double& value) {
  const char* end = text.data() + text.size();
  const auto [ptr, error] = std::from_chars(text.data(), end, value);
  return error == std::errc() && ptr == end;
}

}  // namespace

CLI::Validator integer_in(int64_t min, int64_t max) {
  return CLI::Validator(
      [min, max](std::string& input) -> std::string {
        int64_t value = 0;
        const char* end = input.data() + input.size();
        const auto [ptr, error] = std::from_chars(input.data(), end, value);
        double number = 0;
        if (error == std::errc::invalid_argument || ptr != end) {
          if (parses_as_double(input, number)) return fmt::format("{} is not a whole number", input);
          return fmt::format("'{}' is not a number", input);
        }
        if (error == std::errc::result_out_of_range || value < min || value > max) {
          return fmt::format("{} is out of range; give a whole number from {} to {}", input, min, max);
        }
        return {};
      },
      fmt::format("INT in [{} - {}]", min, max));
}

CLI::Validator number_in(double min, double max, bool above_min) {
  const bool unbounded = max == std::numeric_limits<float>::max();
  const std::string range = fmt::format("{} {}{}", above_min ? ">" : ">=", min,
                                        unbounded ? "" : fmt::format(" and <= {}", max));
  return CLI::Validator(
      [min, max, above_min, range](std::string& input) -> std::string {
        double value = 0;
        if (!parses_as_double(input, value)) return fmt::format("'{}' is not a number", input);
        if (!std::isfinite(value)) return fmt::format("{} is not a finite number; give a number {}", input, range);
        if (value < min || (above_min && value == min) || value > max) {
          return fmt::format("{} is out of range; give a number {}", input, range);
        }
        return {};
      },
      "FLOAT " + range);
}

void check_output_path(const std::string& path) { check_output_file(path); }

void check_output_folder(const std::string& path) {
  std::error_code error;
  fs::path folder = fs::absolute(path, error);
  if (error) throw Error(fmt::format("{}: {}", path, error.message()));
  if (fs::exists(folder, error) && !fs::is_directory(folder, error)) {
    throw Error(fmt::format("{} exists and is not a folder; give a folder path", path));
  }
  while (!fs::exists(folder, error) && folder.has_relative_path()) folder = folder.parent_path();
  if (!fs::is_directory(folder, error)) {
    throw Error(fmt::format("{}: {} is not a folder; give another path", path, folder.string()));
  }
  if (::access(folder.c_str(), W_OK | X_OK) != 0) {
    throw Error(fmt::format("{}: cannot write in the folder {}: {}; give another path", path, folder.string(),
                            std::strerror(errno)));
  }
}

std::string parse_error_message(const CLI::App& app, const CLI::ParseError& error) {
  // The deepest command given (`frugal kb build` ...), for naming its choices.
  const CLI::App* command = &app;
  std::string name = app.get_name();
  while (!command->get_subcommands().empty()) {
    command = command->get_subcommands().front();
    name += " " + command->get_name();
  }
  const std::string help = fmt::format("; `{} --help` lists the {}", name,
                                       command->get_subcommands({}).empty() ? "options" : "commands");
  std::string message = error.what();
  if (dynamic_cast<const CLI::RequiredError*>(&error) && message.rfind("A subcommand", 0) == 0) {
    std::string choices;
    for (const CLI::App* sub : command->get_subcommands({})) {
      choices += fmt::format("{}{}", choices.empty() ? "" : ", ", sub->get_name());
    }
    // A word CLI11 could not place is the unknown command.
    for (const std::string& word : command->remaining()) {
      if (!word.empty() && word[0] != '-') {
        return fmt::format("unknown command '{}'; the commands of `{}` are: {}", word, name, choices);
      }
    }
    return fmt::format("give a command; the commands of `{}` are: {}", name, choices);
  }
  // CLI11 starts most messages with a capital ("The following argument...").
  if (message.size() > 1 && std::isupper(static_cast<unsigned char>(message[0])) &&
      std::islower(static_cast<unsigned char>(message[1]))) {
    message[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(message[0])));
  }
  return message + help;
}

std::vector<std::string> with_llama_cpp_spellings(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--") break;  // what follows is not options
    if (args[i] == "-ctk") args[i] = "--cache-type-k";
    if (args[i] == "-ctv") args[i] = "--cache-type-v";
  }
  return args;
}

}  // namespace frugal::cli
