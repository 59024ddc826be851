// `frugal beam`: beam search from a prompt, with the trie (shared-prefix KV)
// or batch (a KV copy per beam) implementation, or both compared.
#include <algorithm>
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/arguments.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "frugal/beam_search.h"
#include "frugal/error.h"

namespace frugal::cli {

namespace {

struct BeamArguments {
  ModelArguments model;
  std::string prompt;
  int64_t random_prompt = 0;
  BeamSearchOptions search;
  std::string implementation = "trie";
  std::string early_stopping = "false";
  bool compare = false;
  bool json = false;
};

nlohmann::json describe(const BeamSearchResult& result, const Tokenizer& tokenizer, int beam_width) {
  nlohmann::json hypotheses = nlohmann::json::array();
  for (const auto& h : result.hypotheses) {
    hypotheses.push_back({{"tokens", h.tokens},
                          {"text", tokenizer.decode(h.tokens)},
                          {"score", h.score},
                          {"log_probability", h.log_probability}});
  }
  const size_t steps = result.hypotheses.empty() ? 0 : result.hypotheses.front().tokens.size();
  return {{"peak_kv_bytes", result.peak_kv_bytes},
          {"seconds", result.seconds},
          {"forward_passes", result.forward_passes},
          {"steps_per_second", result.seconds > 0 ? static_cast<double>(steps) / result.seconds : 0.0},
          // every step decodes one token per beam
          {"tokens_per_second",
           result.seconds > 0 ? static_cast<double>(steps) * beam_width / result.seconds : 0.0},
          {"hypotheses", hypotheses}};
}

bool same_hypotheses(const BeamSearchResult& a, const BeamSearchResult& b) {
  if (a.hypotheses.size() != b.hypotheses.size()) return false;
  for (size_t i = 0; i < a.hypotheses.size(); ++i) {
    if (a.hypotheses[i].tokens != b.hypotheses[i].tokens) return false;
  }
  return true;
}

void print_text(const std::string& name, const nlohmann::json& r) {
  fmt::print("[{}] peak KV {:.2f} MiB, {:.2f} s, {} forward passes, {:.1f} steps/s, {:.1f} tokens/s\n", name,
             r["peak_kv_bytes"].get<double>() / (1 << 20), r["seconds"].get<double>(), r["forward_passes"].get<int>(),
             r["steps_per_second"].get<double>(), r["tokens_per_second"].get<double>());
  int rank = 1;
  for (const auto& h : r["hypotheses"]) {
    std::string text = h["text"];
    for (auto& c : text) {
      if (c == '\n') c = ' ';
    }
    fmt::print("  {:>2}. score {:.4f}  logprob {:.4f}  {}\n", rank++, h["score"].get<double>(),
               h["log_probability"].get<double>(), text);
  }
}

void run(const BeamArguments& args) {
  LoadedModel loaded = load_model(args.model);
  std::vector<TokenId> prompt;
  if (args.random_prompt > 0) {
    // Reproducible ids for benchmarks (any valid ids will do).
    for (int64_t i = 0; i < args.random_prompt; ++i) {
      prompt.push_back(static_cast<TokenId>((i * 7919 + 13) % loaded.model->config().vocab_size));
    }
  } else {
    prompt = loaded.tokenizer->encode(unescape_newlines(args.prompt), true, false);
  }
  // As `run`: the prompt and the new tokens share the context (-c).
  const int64_t prompt_tokens = static_cast<int64_t>(prompt.size());
  if (prompt_tokens >= loaded.context) {
    throw Error(fmt::format("the prompt ({} tokens) fills the context of {} tokens; use a larger -c or a shorter "
                            "prompt", prompt_tokens, loaded.context));
  }
  BeamSearchOptions options = args.search;
  options.cache_precision = loaded.cache_precision;
  options.max_new_tokens = static_cast<int>(std::min<int64_t>(options.max_new_tokens, loaded.context - prompt_tokens));
  options.early_stopping = args.early_stopping == "true"    ? EarlyStopping::True
                           : args.early_stopping == "never" ? EarlyStopping::Never
                                                            : EarlyStopping::False;
  if (!args.compare) {
    const auto result = make_beam_search(args.implementation)->run(*loaded.model, *loaded.tokenizer, prompt, options);
    const auto described = describe(result, *loaded.tokenizer, options.beam_width);
    if (args.json) {
      fmt::print("{}\n", nlohmann::json{{"implementation", args.implementation}, {args.implementation, described}}
                             .dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    } else {
      print_text(args.implementation, described);
    }
    return;
  }
  const auto trie = make_trie_beam_search()->run(*loaded.model, *loaded.tokenizer, prompt, options);
  const auto batch = make_batch_beam_search()->run(*loaded.model, *loaded.tokenizer, prompt, options);
  const bool identical = same_hypotheses(trie, batch);
  const auto trie_json = describe(trie, *loaded.tokenizer, options.beam_width),
             batch_json = describe(batch, *loaded.tokenizer, options.beam_width);
  if (args.json) {
    fmt::print("{}\n", nlohmann::json{{"identical", identical}, {"trie", trie_json}, {"batch", batch_json}}
                           .dump(2, ' ', false, nlohmann::json::error_handler_t::replace));
    return;
  }
  print_text("trie", trie_json);
  print_text("batch", batch_json);
  fmt::print("identical hypotheses: {} | trie/batch: peak KV {:.2f}x, time {:.2f}x\n", identical ? "yes" : "NO",
             batch.peak_kv_bytes ? static_cast<double>(trie.peak_kv_bytes) / batch.peak_kv_bytes : 0.0,
             batch.seconds > 0 ? trie.seconds / batch.seconds : 0.0);
}

}  // namespace

void add_beam_command(CLI::App& app) {
  auto args = std::make_shared<BeamArguments>();
  CLI::App* command = app.add_subcommand("beam", "Beam search from a prompt (shared-prefix KV trie or a copy per beam)");
  add_model_arguments(*command, args->model);
  auto* prompt = command->add_option("-p,--prompt", args->prompt, "prompt text (\\n means a newline)");
  auto* random = command->add_option("--random-prompt", args->random_prompt,
                                     "use N fixed pseudo-random token ids as the prompt (benchmarks)")
                     ->check(integer_in(1, int64_t{1} << 20));
  prompt->excludes(random);
  command->add_option("-k,--beam-width", args->search.beam_width, "beams")
      ->check(integer_in(1, 1024))
      ->capture_default_str();
  command->add_option("-n,--n-predict", args->search.max_new_tokens,
                      "new tokens at most (fewer when the context, -c, is full)")
      ->check(integer_in(1, 1 << 20))
      ->capture_default_str();
  command->add_option("--length-penalty", args->search.length_penalty, "score = logprob / length^penalty")
      ->capture_default_str();
  command->add_option("--early-stopping", args->early_stopping, "true, false or never (as in transformers)")
      ->check(CLI::IsMember({"true", "false", "never"}))
      ->capture_default_str();
  command->add_option("--num-return", args->search.num_return_sequences, "hypotheses to print (1..k)")
      ->capture_default_str();
  command->add_option("--impl", args->implementation, "trie (shared prefix) or batch (a KV copy per beam)")
      ->check(CLI::IsMember({"trie", "batch"}))
      ->capture_default_str();
  command->add_flag("--compare", args->compare, "run both implementations and compare them");
  command->add_flag("--json", args->json, "print one JSON object");
  command->callback([args] {
    if (args->prompt.empty() && args->random_prompt == 0) throw Error("give a prompt with -p TEXT or --random-prompt N");
    run(*args);
  });
}

}  // namespace frugal::cli
