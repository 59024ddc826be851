// `frugal logits`: one JSON line per prompt with the token ids, the top
// logits and logsumexp at every position (teacher-forced) and a greedy
// continuation, in the format of the reference fixtures, so any two engines'
// outputs can be diffed.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/arguments.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "frugal/error.h"

namespace frugal::cli {

namespace {

struct LogitsArguments {
  ModelArguments model;
  std::string prompts_file;
  int top = 10;
  int greedy = 24;
};

// Numbers and separators as Python's json.dumps writes them (the reference
// files' format): "33.8237", "33.0", ", " and ": ".
std::string python_float(double x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x > 0 ? "Infinity" : "-Infinity";
  std::string s = fmt::format("{}", std::round(x * 1e4) / 1e4);
  if (s.find_first_of(".eni") == std::string::npos) s += ".0";
  return s;
}

std::string json_string(const std::string& text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string json_ids(const std::vector<TokenId>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) out += fmt::format("{}{}", i ? ", " : "", ids[i]);
  return out + "]";
}

std::string position_summary(const float* logits, size_t vocab, int top) {
  const float max = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (size_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - max);
  std::vector<TokenId> order(vocab);
  std::iota(order.begin(), order.end(), 0);
  const size_t k = std::min<size_t>(static_cast<size_t>(top), vocab);
  std::partial_sort(order.begin(), order.begin() + static_cast<long>(k), order.end(), [&](TokenId a, TokenId b) {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  });
  std::string top_list;
  for (size_t i = 0; i < k; ++i) {
    top_list += fmt::format("{}[{}, {}]", i ? ", " : "", order[i], python_float(logits[order[i]]));
  }
  return fmt::format("{{\"logsumexp\": {}, \"top\": [{}]}}", python_float(max + std::log(sum)), top_list);
}

TokenId argmax(const float* logits, size_t vocab) {
  return static_cast<TokenId>(std::max_element(logits, logits + vocab) - logits);
}

void run(const LogitsArguments& args) {
  std::ifstream in(args.prompts_file);
  if (!in) throw Error(fmt::format("{}: cannot read the prompts file", args.prompts_file));
  LoadedModel loaded = load_model(args.model);
  const size_t vocab = static_cast<size_t>(loaded.model->config().vocab_size);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const std::string prompt = unescape_newlines(line);
    const std::vector<TokenId> tokens = loaded.tokenizer->encode(prompt, true, true);
    if (tokens.empty()) throw Error(fmt::format("prompt '{}' gives no tokens", line));
    KvCache cache(loaded.model->config(), std::max<int64_t>(loaded.context,
                                                            static_cast<int64_t>(tokens.size()) + args.greedy + 1),
                  loaded.cache_precision);
    std::vector<float> logits = loaded.model->forward(tokens, cache, true);
    std::string positions;
    for (size_t i = 0; i < tokens.size(); ++i) {
      positions += (i ? ", " : "") + position_summary(&logits[i * vocab], vocab, args.top);
    }
    std::vector<TokenId> greedy;
    std::string greedy_text;
    std::vector<float> last(logits.end() - static_cast<long>(vocab), logits.end());
    for (int step = 0; step < args.greedy; ++step) {
      const TokenId next = argmax(last.data(), vocab);
      greedy.push_back(next);
      greedy_text += loaded.tokenizer->token_to_piece(next, false);
      if (step + 1 < args.greedy) {
        const TokenId batch[1] = {next};
        last = loaded.model->forward(batch, cache, false);
      }
    }
    fmt::print("{{\"prompt\": {}, \"tokens\": {}, \"positions\": [{}], \"greedy\": {}, \"greedy_text\": {}}}\n",
               json_string(prompt), json_ids(tokens), positions, json_ids(greedy), json_string(greedy_text));
    std::fflush(stdout);
  }
}

}  // namespace

void add_logits_command(CLI::App& app) {
  auto args = std::make_shared<LogitsArguments>();
  CLI::App* command = app.add_subcommand("logits", "Print top logits per position as JSON lines (for diffing engines)");
  add_model_arguments(*command, args->model);
  command->add_option("-f,--file", args->prompts_file, "prompts, one per line (\\n means a newline)")
      ->required()
      ->check(CLI::ExistingFile);
  command->add_option("--top", args->top, "logits to list per position")->check(integer_in(1, 1000))->capture_default_str();
  command->add_option("--greedy", args->greedy, "greedy tokens to generate after each prompt")
      ->check(integer_in(0, 100000))
      ->capture_default_str();
  command->callback([args] { run(*args); });
}

}  // namespace frugal::cli
