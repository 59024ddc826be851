// `frugal run`: generate text from a prompt (optionally as a chat turn),
// streaming it to stdout; timings go to stderr.
#include <cstdio>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "cli/arguments.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "frugal/chat.h"
#include "frugal/error.h"
#include "frugal/generate.h"

namespace frugal::cli {

namespace {

struct RunArguments {
  ModelArguments model;
  std::string prompt;
  std::string prompt_file;
  std::string system;
  GenerationArguments generation;
  bool chat = false;
  std::string chat_template;
  bool no_escape = false;
  bool show_prompt = false;
  bool quiet = false;
  bool context_shift = false;
  int64_t keep = 4;
};

void run(const RunArguments& args) {
  LoadedModel loaded = load_model(args.model);
  std::string prompt = args.prompt_file.empty() ? args.prompt : read_text_file(args.prompt_file, "prompt file");
  if (!args.no_escape && args.prompt_file.empty()) prompt = unescape_newlines(prompt);
  const Tokenizer& tokenizer = *loaded.tokenizer;
  std::vector<ChatMessage> messages;
  if (args.chat) {
    if (!args.system.empty()) messages.push_back({"system", args.system});
    messages.push_back({"user", prompt});
    prompt = apply_chat_template(resolve_chat_format(*loaded.model, args.chat_template), messages, true, tokenizer);
  } else if (!args.system.empty()) {
    throw Error("--system needs --chat");
  }
  // In a chat, only the template's markers are special tokens; the user's
  // text is taken literally.
  const std::vector<TokenId> tokens =
      args.chat ? encode_chat_prompt(tokenizer, prompt, messages) : tokenizer.encode(prompt, true, false);
  if (tokens.empty()) throw Error("the prompt is empty; pass text with -p or a file with -f");

  KvCache cache(loaded.model->config(), loaded.context, loaded.cache_precision);
  GenerationOptions options = generation_options(args.generation, !args.quiet);
  options.context_shift = args.context_shift;
  options.context_shift_keep = args.keep;
  options.thinking = thinking_options(args.generation, *loaded.model, tokenizer);
  if (args.show_prompt) {
    fmt::print("{}", prompt);
    std::fflush(stdout);
  }
  AnswerPrinter printer(args.generation.hide_thinking);
  options.on_thinking = [&](std::string_view text) { return printer.thinking(text); };
  const GenerationResult result = generate(*loaded.model, tokenizer, cache, tokens, options,
                                           [&](std::string_view text) { return printer.answer(text); });
  printer.end();
  fmt::print("\n");
  std::fflush(stdout);
  if (!args.quiet) {
    const double decode_rate = result.generation_seconds > 0 ? result.tokens.size() / result.generation_seconds : 0;
    const double prompt_rate = result.prompt_seconds > 0 ? result.prompt_tokens / result.prompt_seconds : 0;
    fmt::print(stderr, "\n[prompt {} tokens, {:.1f} tok/s | generated {} tokens, {:.1f} tok/s | stop: {}{}{}{}]\n",
               result.prompt_tokens, prompt_rate, result.tokens.size(), decode_rate,
               stop_reason_name(result.stop_reason),
               result.context_shifts ? fmt::format(" | context shifted {} times", result.context_shifts) : "",
               thinking_summary(result),
               args.generation.sampling.temperature > 0 ? fmt::format(" | seed {}", result.seed) : "");
  }
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto args = std::make_shared<RunArguments>();
  CLI::App* command = app.add_subcommand("run", "Generate text from a prompt");
  add_model_arguments(*command, args->model, true);
  auto* prompt = command->add_option("-p,--prompt", args->prompt, "prompt text (\\n means a newline)");
  auto* file = command->add_option("-f,--file", args->prompt_file, "read the prompt from a file");
  prompt->excludes(file);
  add_generation_arguments(*command, args->generation);
  command->add_flag("--chat", args->chat, "treat the prompt as a user message in the model's chat template");
  command->add_option("--system", args->system, "system message (with --chat)");
  command->add_option("--chat-template", args->chat_template, "chat format name, overriding the model's template");
  command->add_flag("--no-escape", args->no_escape, "take \\n in -p literally");
  command->add_flag("--show-prompt", args->show_prompt, "print the (templated) prompt before the answer");
  command->add_flag("-q,--quiet", args->quiet, "no timing summary on stderr");
  command->add_flag("--context-shift", args->context_shift,
                    "when the context is full, forget the older half of it (after --keep tokens) and go on");
  auto* keep = command->add_option("--keep", args->keep,
                                   "tokens at the start kept by --context-shift (attention sinks)")
                   ->check(integer_in(0, int64_t{1} << 24))
                   ->capture_default_str();
  keep->needs(command->get_option("--context-shift"));
  command->callback([args] {
    if (args->prompt.empty() && args->prompt_file.empty()) throw Error("give a prompt with -p TEXT or -f FILE");
    run(*args);
  });
}

}  // namespace frugal::cli
