#include "tensor/matmul.h"

#include <algorithm>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/quant.h"
#include "tensor/kernel_set.h"
#include "tensor/thread_pool.h"

namespace frugal {

namespace {

// Blocking: a thread walks its rows in blocks small enough to stay in L2
// while every token block passes over them; each dot_tile call then works
// on one rows x tokens tile.
constexpr size_t kRowBlock = 64;
constexpr size_t kTokenBlock = 64;

}  // namespace

void matmul(const WeightMatrix& weight, const float* in, size_t tokens, float* out, ThreadPool& pool) {
  const KernelSet& kernels = active_kernels();
  const TensorType activation = activation_type(weight.type);
  const size_t cols = static_cast<size_t>(weight.cols);
  const size_t activation_row_bytes = tensor_row_bytes(activation, cols);
  const DotTileFn dot_tile = kernels.dot_tile[type_slot(weight.type)];
  // F32 activations are used as they are; other formats are converted once
  // per token here rather than once per weight row.
  thread_local std::vector<uint8_t> converted;
  const uint8_t* activations = reinterpret_cast<const uint8_t*>(in);
  if (activation != TensorType::F32) {
    const QuantizeActivationFn quantize = kernels.quantize_activation[type_slot(activation)];
    converted.resize(activation_row_bytes * tokens);
    uint8_t* target = converted.data();
    if (tokens == 1) {
      quantize(in, target, cols);
    } else {
      pool.parallel_for(tokens, [&](size_t begin, size_t end) {
        for (size_t t = begin; t < end; ++t) quantize(in + t * cols, target + t * activation_row_bytes, cols);
      });
    }
    activations = target;
  }
  const size_t rows = static_cast<size_t>(weight.rows);
  pool.parallel_for(rows, [&](size_t begin, size_t end) {
    for (size_t r0 = begin; r0 < end; r0 += kRowBlock) {
      const size_t row_count = std::min(kRowBlock, end - r0);
      for (size_t t0 = 0; t0 < tokens; t0 += kTokenBlock) {
        const size_t token_count = std::min(kTokenBlock, tokens - t0);
        dot_tile(weight.data + r0 * weight.row_bytes, weight.row_bytes, activations + t0 * activation_row_bytes,
                 activation_row_bytes, cols, row_count, token_count, out + t0 * rows + r0, rows);
      }
    }
  });
}

void dequantize_matrix_row(const WeightMatrix& weight, int64_t row, float* out) {
  if (row < 0 || row >= weight.rows) {
    throw Error(fmt::format("row {} is outside the matrix ({} rows)", row, weight.rows));
  }
  dequantize_row(weight.type, weight.data + static_cast<size_t>(row) * weight.row_bytes, out,
                 static_cast<size_t>(weight.cols));
}

}  // namespace frugal
