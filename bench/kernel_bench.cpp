// Micro-benchmarks of the kernel tables, per instruction-set level and
// weight format:
//  - matvec: one token against 256 MB of weights (beyond the caches), as in
//    decoding (memory-bound: reports weight GB/s);
//  - tile: 64 tokens against 64 rows, as in prompt processing (compute-bound:
//    reports GFLOP/s);
//  - read_bandwidth: the machine's streaming read rate with 1 and 2 threads,
//    the ceiling for matvec.
// Run: build/bench/frugal_bench_kernels --benchmark_filter='matvec/avx512'
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <thread>
#include <vector>

#include "frugal/quant.h"
#include "tensor/kernel_set.h"
#include "tensor/matmul.h"
#include "tensor/packed_weights.h"

namespace frugal {
namespace {

struct PackedProblem {
  std::vector<uint8_t> weights, activations;
  size_t weight_row_bytes = 0, activation_row_bytes = 0;
};

PackedProblem make_problem(TensorType type, size_t rows, size_t cols, size_t tokens) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  PackedProblem p;
  const TensorType activation = activation_type(type);
  p.weight_row_bytes = tensor_row_bytes(type, cols);
  p.activation_row_bytes = tensor_row_bytes(activation, cols);
  p.weights.resize(p.weight_row_bytes * rows);
  p.activations.resize(p.activation_row_bytes * tokens);
  // Quantizing is slow for some formats: make up to 64 distinct rows and
  // repeat them (the memory traffic is the same).
  std::vector<float> row(cols);
  for (size_t r = 0; r < rows; ++r) {
    uint8_t* target = p.weights.data() + r * p.weight_row_bytes;
    if (r >= 64) {
      std::copy_n(p.weights.data() + (r % 64) * p.weight_row_bytes, p.weight_row_bytes, target);
      continue;
    }
    for (auto& v : row) v = normal(rng);
    quantize_row(type, row.data(), target, cols);
  }
  for (size_t t = 0; t < tokens; ++t) {
    for (auto& v : row) v = normal(rng);
    quantize_row(activation, row.data(), p.activations.data() + t * p.activation_row_bytes, cols);
  }
  return p;
}

void matvec(benchmark::State& state, Isa isa, TensorType type) {
  if (!cpu_supports(isa)) {
    state.SkipWithError("CPU lacks this level");
    return;
  }
  const auto& kernels = kernel_set(isa);
  // About 256 MB of weights, far beyond the caches: decoding streams from DRAM.
  constexpr size_t kCols = 2048;
  const size_t kRows = (size_t{256} << 20) / tensor_row_bytes(type, kCols);
  const PackedProblem p = make_problem(type, kRows, kCols, 1);
  std::vector<float> out(kRows);
  for (auto _ : state) {
    kernels.dot_tile[type_slot(type)](p.weights.data(), p.weight_row_bytes, p.activations.data(),
                                      p.activation_row_bytes, kCols, kRows, 1, out.data(), kRows);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * p.weights.size()));
}

// The same product over the weights repacked (tensor/packed_weights.h): what
// --repack on reads in decode.
void matvec_packed(benchmark::State& state, Isa isa, TensorType type) {
  const PackedLayout layout = packed_layout_for(type);
  if (!cpu_supports(isa) || kernel_set(isa).dot_packed[static_cast<size_t>(layout)] == nullptr) {
    state.SkipWithError("no repacked kernel at this level");
    return;
  }
  constexpr size_t kCols = 2048;
  const size_t kRows = (size_t{256} << 20) / tensor_row_bytes(type, kCols) / kPackedGroupRows * kPackedGroupRows;
  const PackedProblem p = make_problem(type, kRows, kCols, 1);
  const WeightMatrix stored{type, p.weights.data(), static_cast<int64_t>(kRows), static_cast<int64_t>(kCols),
                            p.weight_row_bytes};
  std::vector<uint8_t> packed(packed_matrix_bytes(layout, kRows, kCols));
  pack_matrix_groups(layout, stored, 0, kRows / kPackedGroupRows, packed.data());
  const size_t group_bytes = packed_matrix_bytes(layout, kPackedGroupRows, kCols);
  std::vector<float> out(kRows);
  for (auto _ : state) {
    kernel_set(isa).dot_packed[static_cast<size_t>(layout)](packed.data(), group_bytes, p.activations.data(),
                                                            p.activation_row_bytes, kCols, kRows, 1, out.data(),
                                                            kRows);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * p.weights.size()));
}

void tile(benchmark::State& state, Isa isa, TensorType type) {
  if (!cpu_supports(isa)) {
    state.SkipWithError("CPU lacks this level");
    return;
  }
  const auto& kernels = kernel_set(isa);
  constexpr size_t kRows = 64, kCols = 2048, kTokens = 64;
  const PackedProblem p = make_problem(type, kRows, kCols, kTokens);
  std::vector<float> out(kRows * kTokens);
  for (auto _ : state) {
    kernels.dot_tile[type_slot(type)](p.weights.data(), p.weight_row_bytes, p.activations.data(),
                                      p.activation_row_bytes, kCols, kRows, kTokens, out.data(), kRows);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * 2.0 * kRows * kCols * kTokens / 1e9, benchmark::Counter::kIsRate);
}

void read_bandwidth(benchmark::State& state) {
  const size_t threads = static_cast<size_t>(state.range(0));
  std::vector<uint64_t> data((size_t{256} << 20) / sizeof(uint64_t), 1);
  for (auto _ : state) {
    std::vector<std::thread> pool;
    std::vector<uint64_t> sums(threads);
    for (size_t t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const size_t per = data.size() / threads;
        uint64_t a = 0, b = 0, c = 0, d = 0;
        for (size_t i = t * per; i + 4 <= (t + 1) * per; i += 4) {
          a += data[i];
          b += data[i + 1];
          c += data[i + 2];
          d += data[i + 3];
        }
        sums[t] = a + b + c + d;
      });
    }
    for (auto& th : pool) th.join();
    benchmark::DoNotOptimize(sums.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size() * sizeof(uint64_t)));
}

const TensorType kWeightTypes[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q8_0,
                                   TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1,
                                   TensorType::Q2_K, TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K,
                                   TensorType::Q6_K};

const bool kRegistered = [] {
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    for (TensorType type : kWeightTypes) {
      const std::string suffix = std::string(isa_name(isa)) + "/" + std::string(tensor_type_name(type));
      benchmark::RegisterBenchmark(("matvec/" + suffix).c_str(), matvec, isa, type)->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(("tile/" + suffix).c_str(), tile, isa, type)->Unit(benchmark::kMicrosecond);
      if (packed_layout_for(type) != PackedLayout::None) {
        benchmark::RegisterBenchmark(("matvec_packed/" + suffix).c_str(), matvec_packed, isa, type)
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
  benchmark::RegisterBenchmark("read_bandwidth", read_bandwidth)->Arg(1)->Arg(2)->UseRealTime();
  return true;
}();

}  // namespace
}  // namespace frugal
