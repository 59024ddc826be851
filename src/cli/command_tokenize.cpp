// `frugal tokenize`: show how a model's tokenizer splits text. Works on
// vocab-only GGUF files too (no weights needed).
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "frugal/gguf.h"
#include "frugal/tokenizer.h"

namespace frugal::cli {

namespace {

struct TokenizeArguments {
  std::string model_path;
  std::string prompt;
  bool no_bos = false;
  bool no_parse_special = false;
  bool ids_only = false;
  bool no_escape = false;
};

// Printable form of a token piece: control bytes escaped.
std::string printable(const std::string& piece) {
  std::string out;
  for (unsigned char c : piece) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  return out;
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto args = std::make_shared<TokenizeArguments>();
  CLI::App* command = app.add_subcommand("tokenize", "Split text into tokens with a model's tokenizer");
  command->add_option("-m,--model", args->model_path, "GGUF file (a vocab-only file is enough)")
      ->required()
      ->check(CLI::ExistingFile);
  command->add_option("-p,--prompt", args->prompt, "text to tokenize (\\n means a newline)")->required();
  command->add_flag("--no-bos", args->no_bos, "do not add BOS/EOS even if the vocabulary asks for them");
  command->add_flag("--no-parse-special", args->no_parse_special, "treat texts like <|im_start|> as plain text");
  command->add_flag("--ids", args->ids_only, "print only the list of ids");
  command->add_flag("--no-escape", args->no_escape, "take \\n in -p literally");
  command->callback([args] {
    const GgufFile file = GgufFile::open(args->model_path);
    const auto tokenizer = Tokenizer::from_gguf(file);
    const std::string text = args->no_escape ? args->prompt : unescape_newlines(args->prompt);
    const auto tokens = tokenizer->encode(text, !args->no_bos, !args->no_parse_special);
    if (args->ids_only) {
      std::string list;
      for (size_t i = 0; i < tokens.size(); ++i) list += fmt::format("{}{}", i ? ", " : "", tokens[i]);
      fmt::print("[{}]\n", list);
      return;
    }
    for (TokenId id : tokens) fmt::print("{:>6} -> '{}'\n", id, printable(tokenizer->token_to_piece(id, true)));
    fmt::print("{} tokens\n", tokens.size());
  });
}

}  // namespace frugal::cli
