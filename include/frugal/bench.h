// Throughput measurement in the manner of llama-bench: prompt processing
// (one batched forward pass over p tokens) and token generation (n forward
// passes of one token each), repeated, as tokens per second mean +- sd.
// Used by `frugal bench`; the server and OAE runs can reuse it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "frugal/model.h"

namespace frugal {

struct BenchmarkOptions {
  int64_t prompt_tokens = 512;    // pp test; 0 skips it
  int64_t generated_tokens = 128; // tg test; 0 skips it
  int repetitions = 3;            // timed runs of each test, after one untimed warm-up
  // Tokens already in the KV cache before each test (llama-bench's -d):
  // decode at depth reads that many cached positions per token. Filled once,
  // untimed; each run starts from it again.
  int64_t depth = 0;
  uint64_t seed = 1234;           // for the (arbitrary) token ids
  KvTypes cache_precision = KvPrecision::F32;
};

// Rates of one test over the repetitions.
struct RateSamples {
  std::vector<double> tokens_per_second;
  double mean() const;
  double stddev() const;  // sample standard deviation (n - 1), 0 for one sample
};

struct BenchmarkResult {
  BenchmarkOptions options;
  size_t threads = 0;
  uint64_t parameters = 0;    // elements of every tensor in the file
  uint64_t model_bytes = 0;   // bytes of every tensor in the file
  // Weight bytes one decoded token streams from memory: every layer matrix
  // and the output matrix (the one embedding row read is left out).
  uint64_t weight_bytes_per_token = 0;
  RateSamples prefill;  // empty when skipped
  RateSamples decode;   // empty when skipped
  // Achieved memory bandwidth of decoding, bytes per second (mean rate).
  double decode_bytes_per_second() const { return decode.mean() * static_cast<double>(weight_bytes_per_token); }
};

// Sum of the bytes of the matrices a single-token forward pass reads.
uint64_t weight_bytes_per_token(const Model& model);

// A short description of the model's weight format: the llama.cpp file type
// when the file names one ("Q4_K_M"), otherwise the type holding most bytes.
std::string weight_format_label(const GgufFile& file);

// Runs the tests on `model` (its thread count is the model's). `progress`,
// if given, is told before each run ("warm-up", "pp512 2/3"...).
BenchmarkResult run_benchmark(Model& model, const BenchmarkOptions& options,
                              const std::function<void(const std::string&)>& progress = {});

}  // namespace frugal
