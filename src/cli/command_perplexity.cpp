// `frugal perplexity`: perplexity of a text in chunks, as llama-perplexity
// measures it (each chunk starts with BOS; the second half of its positions
// is scored), and the KL divergence of every scored position's next-token
// distribution from a base run's (--kl-divergence-base, then
// --kl-divergence), so a KV type or a retrofit can be measured against F32
// on any text, and beside llama.cpp's own numbers for the same file.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <xxhash.h>

#include "cli/arguments.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "frugal/error.h"

namespace frugal::cli {

namespace {

struct PerplexityArguments {
  ModelArguments model;
  std::string text_file;
  int64_t chunks = -1;  // -1: all
  std::string base_file;
  bool kl_divergence = false;
  bool json = false;
};

// Base runs: magic, version, vocabulary size, scored positions, a hash of
// the chunks' tokens, then per position the log-probabilities as F32.
constexpr char kBaseMagic[8] = {'F', 'R', 'U', 'G', 'A', 'L', 'K', 'L'};
struct BaseHeader {
  char magic[8];
  uint32_t version = 1;
  uint32_t vocab = 0;
  uint64_t positions = 0;
  uint64_t tokens_hash = 0;
};

// log-softmax in double, stored as float.
void log_probabilities(const float* logits, size_t vocab, std::vector<float>& out) {
  const float max = *std::max_element(logits, logits + vocab);
  double sum = 0;
  for (size_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - max);
  const double log_sum = std::log(sum) + max;
  out.resize(vocab);
  for (size_t i = 0; i < vocab; ++i) out[i] = static_cast<float>(logits[i] - log_sum);
}

struct Statistics {
  size_t positions = 0;
  double nll = 0, nll_squares = 0;
  // Against the base run:
  double kl = 0, kl_squares = 0, kl_max = 0;
  size_t same_top = 0;
  std::vector<double> kl_values;

  void add_nll(double x) {
    ++positions;
    nll += x;
    nll_squares += x * x;
  }
  double mean_kl() const { return kl_values.empty() ? 0 : kl / static_cast<double>(kl_values.size()); }
  double kl_error() const {  // standard error of the mean
    const double n = static_cast<double>(kl_values.size());
    if (n < 2) return 0;
    return std::sqrt(std::max(0.0, kl_squares / n - mean_kl() * mean_kl()) / (n - 1));
  }
  double kl_quantile(double q) {
    if (kl_values.empty()) return 0;
    std::sort(kl_values.begin(), kl_values.end());
    return kl_values[static_cast<size_t>(q * static_cast<double>(kl_values.size() - 1))];
  }
};

void run(const PerplexityArguments& args) {
  if (args.kl_divergence && args.base_file.empty()) {
    throw Error("--kl-divergence compares with a base run: give its file with --kl-divergence-base (written by a "
                "first run with --kl-divergence-base alone)");
  }
  const std::string text = read_text_file(args.text_file, "text file");
  ModelArguments model_args = args.model;
  if (model_args.context == 0) model_args.context = 512;  // llama-perplexity's usual -c
  LoadedModel loaded = load_model(model_args);
  const auto chunk_size = static_cast<size_t>(loaded.context);
  if (chunk_size < 8) throw Error("-c must be at least 8 tokens for perplexity (each chunk scores its second half)");
  const std::vector<TokenId> tokens = loaded.tokenizer->encode(text, true, true);
  size_t chunks = tokens.size() / chunk_size;
  if (args.chunks >= 0) chunks = std::min(chunks, static_cast<size_t>(args.chunks));
  if (chunks == 0) {
    throw Error(fmt::format("{}: {} tokens, fewer than one chunk of {} (-c); give a longer text or a smaller -c",
                            args.text_file, tokens.size(), chunk_size));
  }
  const size_t vocab = static_cast<size_t>(loaded.model->config().vocab_size);
  const size_t first_scored = chunk_size / 2, scored_per_chunk = chunk_size - 1 - first_scored;
  const uint64_t tokens_hash = XXH3_64bits(tokens.data(), chunks * chunk_size * sizeof(TokenId));

  BaseHeader header{};
  std::memcpy(header.magic, kBaseMagic, sizeof kBaseMagic);
  header.vocab = static_cast<uint32_t>(vocab);
  header.positions = chunks * scored_per_chunk;
  header.tokens_hash = tokens_hash;
  std::FILE* base = nullptr;
  if (!args.base_file.empty()) {
    base = std::fopen(args.base_file.c_str(), args.kl_divergence ? "rb" : "wb");
    if (!base) throw Error(fmt::format("{}: cannot {} the base file", args.base_file, args.kl_divergence ? "read" : "write"));
  }
  struct Closer {
    std::FILE* f;
    ~Closer() {
      if (f) std::fclose(f);
    }
  } closer{base};
  if (base && args.kl_divergence) {
    BaseHeader stored{};
    if (std::fread(&stored, sizeof stored, 1, base) != 1 || std::memcmp(stored.magic, kBaseMagic, 8) != 0) {
      throw Error(fmt::format("{}: not a frugal perplexity base file (write one with --kl-divergence-base alone)",
                              args.base_file));
    }
    if (stored.vocab != header.vocab || stored.tokens_hash != header.tokens_hash ||
        stored.positions < header.positions) {
      throw Error(fmt::format("{}: the base run was over other tokens or another vocabulary ({} positions, vocab {}; "
                              "this run: {} positions, vocab {}); use the same text, -c and --chunks",
                              args.base_file, stored.positions, stored.vocab, header.positions, header.vocab));
    }
  } else if (base && std::fwrite(&header, sizeof header, 1, base) != 1) {
    throw Error(fmt::format("{}: cannot write the base file", args.base_file));
  }

  Statistics stats;
  std::vector<float> log_p, base_log_p(vocab);
  KvCache cache(loaded.model->config(), static_cast<int64_t>(chunk_size), loaded.cache_precision);
  for (size_t c = 0; c < chunks; ++c) {
    std::vector<TokenId> chunk(tokens.begin() + static_cast<long>(c * chunk_size),
                               tokens.begin() + static_cast<long>((c + 1) * chunk_size));
    if (loaded.tokenizer->add_bos() && loaded.tokenizer->bos() >= 0) chunk[0] = loaded.tokenizer->bos();
    cache.truncate(0);
    const std::vector<float> logits = loaded.model->forward(chunk, cache, true);
    for (size_t j = first_scored; j + 1 < chunk_size; ++j) {
      log_probabilities(&logits[j * vocab], vocab, log_p);
      stats.add_nll(-static_cast<double>(log_p[static_cast<size_t>(chunk[j + 1])]));
      if (!base) continue;
      if (!args.kl_divergence) {
        if (std::fwrite(log_p.data(), sizeof(float), vocab, base) != vocab) {
          throw Error(fmt::format("{}: cannot write the base file (disk full?)", args.base_file));
        }
        continue;
      }
      if (std::fread(base_log_p.data(), sizeof(float), vocab, base) != vocab) {
        throw Error(fmt::format("{}: the base file is truncated", args.base_file));
      }
      double kl = 0;  // KL(base || this run)
      for (size_t i = 0; i < vocab; ++i) {
        const double p = std::exp(static_cast<double>(base_log_p[i]));
        kl += p * (static_cast<double>(base_log_p[i]) - log_p[i]);
      }
      kl = std::max(kl, 0.0);
      stats.kl += kl;
      stats.kl_squares += kl * kl;
      stats.kl_max = std::max(stats.kl_max, kl);
      stats.kl_values.push_back(kl);
      const auto top = [&](const std::vector<float>& v) { return std::max_element(v.begin(), v.end()) - v.begin(); };
      stats.same_top += top(log_p) == top(base_log_p) ? 1 : 0;
    }
    if (!args.json) {
      fmt::print(stderr, "chunk {}/{}: perplexity so far {:.4f}\n", c + 1, chunks,
                 std::exp(stats.nll / static_cast<double>(stats.positions)));
    }
  }
  const double n = static_cast<double>(stats.positions);
  const double mean_nll = stats.nll / n;
  const double nll_error = std::sqrt(std::max(0.0, stats.nll_squares / n - mean_nll * mean_nll) / std::max(1.0, n - 1));
  nlohmann::json result{{"cache_type", kv_types_name(loaded.cache_precision)},
                        {"chunks", chunks},
                        {"chunk_tokens", chunk_size},
                        {"scored_positions", stats.positions},
                        {"perplexity", std::exp(mean_nll)},
                        {"perplexity_error", std::exp(mean_nll) * nll_error}};
  if (args.kl_divergence) {
    result["kl_divergence"] = {{"mean", stats.mean_kl()},
                               {"error", stats.kl_error()},
                               {"median", stats.kl_quantile(0.5)},
                               {"p99", stats.kl_quantile(0.99)},
                               {"max", stats.kl_max},
                               {"same_top", static_cast<double>(stats.same_top) / n}};
  }
  if (args.json) {
    fmt::print("{}\n", result.dump());
    return;
  }
  fmt::print("perplexity: {:.4f} ± {:.4f} over {} positions ({} chunks of {} tokens, KV {})\n", std::exp(mean_nll),
             std::exp(mean_nll) * nll_error, stats.positions, chunks, chunk_size,
             kv_types_name(loaded.cache_precision));
  if (args.kl_divergence) {
    fmt::print("KL divergence from the base: mean {:.6f} ± {:.6f}, median {:.6f}, 99th percentile {:.6f}, max {:.6f}\n",
               stats.mean_kl(), stats.kl_error(), stats.kl_quantile(0.5), stats.kl_quantile(0.99), stats.kl_max);
    fmt::print("same top token as the base: {:.2f}%\n", 100.0 * static_cast<double>(stats.same_top) / n);
  } else if (base) {
    fmt::print("base log-probabilities written to {} (compare a run with --kl-divergence-base {} --kl-divergence)\n",
               args.base_file, args.base_file);
  }
}

}  // namespace

void add_perplexity_command(CLI::App& app) {
  auto args = std::make_shared<PerplexityArguments>();
  CLI::App* command = app.add_subcommand(
      "perplexity", "Perplexity of a text in chunks of -c tokens, and KL divergence from a base run (llama-perplexity)");
  add_model_arguments(*command, args->model);
  command->add_option("-f,--file", args->text_file, "the text")->required()->check(CLI::ExistingFile);
  command->add_option("--chunks", args->chunks, "at most this many chunks (default: all)")
      ->check(integer_in(0, int64_t{1} << 30));
  command->add_option("--kl-divergence-base", args->base_file,
                      "file of the base run's log-probabilities: written, or read with --kl-divergence");
  command->add_flag("--kl-divergence", args->kl_divergence, "compare with the base run in --kl-divergence-base");
  command->add_flag("--json", args->json, "print one JSON object instead of the text report");
  command->callback([args] { run(*args); });
}

}  // namespace frugal::cli
