// Micro-benchmarks of the reference dot products, one per weight format:
// the baseline the SIMD kernels (next issue) are measured against.
// Run: build/bench/frugal_bench_kernels --benchmark_filter=Q8_0
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "frugal/quant.h"

namespace {

void dot_row_benchmark(benchmark::State& state, frugal::TensorType weight_type) {
  constexpr size_t kColumns = 4096;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> weights(kColumns), activations(kColumns);
  for (auto& v : weights) v = normal(rng);
  for (auto& v : activations) v = normal(rng);
  const auto activation_type = frugal::activation_type(weight_type);
  std::vector<uint8_t> packed_weights(frugal::tensor_row_bytes(weight_type, kColumns));
  std::vector<uint8_t> packed_activations(frugal::tensor_row_bytes(activation_type, kColumns));
  frugal::quantize_row(weight_type, weights.data(), packed_weights.data(), kColumns);
  frugal::quantize_row(activation_type, activations.data(), packed_activations.data(), kColumns);
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        frugal::dot_row(weight_type, packed_weights.data(), packed_activations.data(), kColumns));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * packed_weights.size()));
  state.counters["GFLOP/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * 2 * kColumns / 1e9,
                                                 benchmark::Counter::kIsRate);
}

#define FRUGAL_DOT_BENCHMARK(TYPE) BENCHMARK_CAPTURE(dot_row_benchmark, TYPE, frugal::TensorType::TYPE)
FRUGAL_DOT_BENCHMARK(F32);
FRUGAL_DOT_BENCHMARK(F16);
FRUGAL_DOT_BENCHMARK(BF16);
FRUGAL_DOT_BENCHMARK(Q8_0);
FRUGAL_DOT_BENCHMARK(Q4_0);
FRUGAL_DOT_BENCHMARK(Q4_1);
FRUGAL_DOT_BENCHMARK(Q5_0);
FRUGAL_DOT_BENCHMARK(Q5_1);
FRUGAL_DOT_BENCHMARK(Q2_K);
FRUGAL_DOT_BENCHMARK(Q3_K);
FRUGAL_DOT_BENCHMARK(Q4_K);
FRUGAL_DOT_BENCHMARK(Q5_K);
FRUGAL_DOT_BENCHMARK(Q6_K);

}  // namespace
