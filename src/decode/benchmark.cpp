// Prefill and decode throughput, measured as llama-bench does: a fresh KV
// cache per run, one untimed warm-up, then timed repetitions.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>

#include <fmt/format.h>

#include "frugal/bench.h"
#include "frugal/error.h"
#include "frugal/synth.h"

namespace frugal {

namespace {

// Arbitrary valid token ids; what they are does not change the work done.
std::vector<TokenId> pseudo_random_tokens(int64_t count, int64_t vocab, uint64_t seed) {
  std::vector<TokenId> tokens(static_cast<size_t>(count));
  uint64_t state = seed;
  for (auto& t : tokens) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    t = static_cast<TokenId>((state >> 33) % static_cast<uint64_t>(vocab));
  }
  return tokens;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A cache holding `depth` tokens already (filled in batches, untimed), with
// room for `more`.
KvCache cache_at_depth(Model& model, std::span<const TokenId> depth_tokens, int64_t more, KvTypes precision) {
  KvCache cache(model.config(), static_cast<int64_t>(depth_tokens.size()) + more, precision);
  constexpr size_t kBatch = 512;
  for (size_t begin = 0; begin < depth_tokens.size(); begin += kBatch) {
    model.forward(depth_tokens.subspan(begin, std::min(kBatch, depth_tokens.size() - begin)), cache, false);
  }
  return cache;
}

// One prompt-processing run: all tokens in one batched pass after the
// cache's depth (the cache is truncated back to it afterwards).
double time_prefill(Model& model, KvCache& cache, std::span<const TokenId> tokens) {
  const int64_t depth = cache.size();
  const auto start = std::chrono::steady_clock::now();
  model.forward(tokens, cache);
  const double seconds = seconds_since(start);
  cache.truncate(depth);
  return seconds;
}

// One generation run: tokens[0] as a one-token prompt (untimed), then one
// pass per remaining token.
double time_decode(Model& model, KvCache& cache, std::span<const TokenId> tokens) {
  const int64_t depth = cache.size();
  model.forward(tokens.first(1), cache);
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 1; i < tokens.size(); ++i) model.forward(tokens.subspan(i, 1), cache);
  const double seconds = seconds_since(start);
  cache.truncate(depth);
  return seconds;
}

}  // namespace

double RateSamples::mean() const {
  if (tokens_per_second.empty()) return 0.0;
  return std::accumulate(tokens_per_second.begin(), tokens_per_second.end(), 0.0) /
         static_cast<double>(tokens_per_second.size());
}

double RateSamples::stddev() const {
  if (tokens_per_second.size() < 2) return 0.0;
  const double m = mean();
  double sum = 0.0;
  for (double r : tokens_per_second) sum += (r - m) * (r - m);
  return std::sqrt(sum / static_cast<double>(tokens_per_second.size() - 1));
}

uint64_t weight_bytes_per_token(const Model& model) {
  const std::string output = model.config().tied_embeddings ? "token_embd.weight" : "output.weight";
  uint64_t bytes = 0;
  for (const auto& t : model.file().tensors()) {
    if (t.n_dims >= 2 && (t.name.starts_with("blk.") || t.name == output)) bytes += t.size_bytes;
  }
  return bytes;
}

std::string weight_format_label(const GgufFile& file) {
  if (const GgufValue* type = file.find("general.file_type"); type && type->is_integer()) {
    if (auto name = llama_file_type_name(static_cast<uint32_t>(type->as_uint())); !name.empty()) {
      return std::string(name);
    }
  }
  std::map<TensorType, uint64_t> bytes_by_type;
  for (const auto& t : file.tensors()) bytes_by_type[t.type] += t.size_bytes;
  if (bytes_by_type.empty()) return "?";
  const auto most = std::max_element(bytes_by_type.begin(), bytes_by_type.end(),
                                     [](const auto& a, const auto& b) { return a.second < b.second; });
  return std::string(tensor_type_name(most->first));
}

BenchmarkResult run_benchmark(Model& model, const BenchmarkOptions& options,
                              const std::function<void(const std::string&)>& progress) {
  if (options.prompt_tokens < 0 || options.generated_tokens < 0 || options.repetitions < 1 || options.depth < 0) {
    throw Error(fmt::format("benchmark needs non-negative token counts and depth and at least one repetition (got -p "
                            "{} -n {} -d {} -r {})",
                            options.prompt_tokens, options.generated_tokens, options.depth, options.repetitions));
  }
  if (options.prompt_tokens == 0 && options.generated_tokens == 0) {
    throw Error("benchmark has nothing to measure: give -p or -n greater than 0");
  }
  BenchmarkResult result;
  result.options = options;
  result.threads = model.thread_count();
  for (const auto& t : model.file().tensors()) {
    result.parameters += static_cast<uint64_t>(t.element_count());
    result.model_bytes += t.size_bytes;
  }
  result.weight_bytes_per_token = weight_bytes_per_token(model);

  const int64_t vocab = model.config().vocab_size;
  const auto prompt = pseudo_random_tokens(options.prompt_tokens, vocab, options.seed);
  const auto generated = pseudo_random_tokens(options.generated_tokens + 1, vocab, options.seed + 1);
  const auto depth = pseudo_random_tokens(options.depth, vocab, options.seed + 2);
  auto tell = [&](const std::string& what) {
    if (progress) progress(what);
  };
  const std::string pp = fmt::format("pp{}", options.prompt_tokens), tg = fmt::format("tg{}", options.generated_tokens);

  // Warm-up as llama-bench: a whole prompt, and a single generated token,
  // so that pages are mapped and caches and threads are awake.
  if (options.depth > 0) tell(fmt::format("depth {}", options.depth));
  KvCache cache = cache_at_depth(model, depth, std::max(options.prompt_tokens, options.generated_tokens + 1),
                                 options.cache_precision);
  tell("warm-up");
  if (options.prompt_tokens > 0) time_prefill(model, cache, prompt);
  if (options.generated_tokens > 0) time_decode(model, cache, std::span(generated).first(2));

  for (int r = 0; r < options.repetitions && options.prompt_tokens > 0; ++r) {
    tell(fmt::format("{} {}/{}", pp, r + 1, options.repetitions));
    const double seconds = time_prefill(model, cache, prompt);
    result.prefill.tokens_per_second.push_back(static_cast<double>(options.prompt_tokens) / seconds);
  }
  for (int r = 0; r < options.repetitions && options.generated_tokens > 0; ++r) {
    tell(fmt::format("{} {}/{}", tg, r + 1, options.repetitions));
    const double seconds = time_decode(model, cache, generated);
    result.decode.tokens_per_second.push_back(static_cast<double>(options.generated_tokens) / seconds);
  }
  return result;
}

}  // namespace frugal
