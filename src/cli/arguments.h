// Argument checks shared by the commands: numbers that say "not a number"
// rather than CLI11's "not in range", output paths checked before any work,
// and CLI11's parse errors turned into one clear line.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace frugal::cli {

// A whole number in [min, max].
CLI::Validator integer_in(int64_t min, int64_t max);

// A finite number in [min, max]; with `above_min`, in (min, max]. The
// default `max` is the largest float (the type of most such options).
CLI::Validator number_in(double min, double max = std::numeric_limits<float>::max(), bool above_min = false);

// Throws Error unless a file can be written at `path` (folder exists and is
// writable, not a directory, FIFO or device), so a command fails before its
// work rather than after it.
void check_output_path(const std::string& path);

// The same for a folder that will be created if needed: the nearest existing
// folder above it must be writable, and `path` itself a folder if it exists.
void check_output_folder(const std::string& path);

// The one-line message for a parse error of `app` (which may have parsed a
// command before failing): unknown or missing commands name the choices.
std::string parse_error_message(const CLI::App& app, const CLI::ParseError& error);

// The command line with llama.cpp's spellings that CLI11 cannot declare
// (several letters after one dash: -ctk, -ctv) written as frugal's long
// options, so commands copied from llama.cpp work.
std::vector<std::string> with_llama_cpp_spellings(int argc, char** argv);

}  // namespace frugal::cli
