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
// on one rows x tokens tile. 128 tokens: the AVX-512 Q8_0/Q4_0/Q5_0 tiles
// repack their weights once per call, so longer token blocks amortise that.
constexpr size_t kRowBlock = 64;
constexpr size_t kTokenBlock = 128;

}  // namespace

namespace {

// Converts `tokens` rows of F32 activations to `activation`; F32 stays as is.
const uint8_t* convert_activations(TensorType activation, const float* in, size_t tokens, size_t cols,
                                   ThreadPool& pool) {
  if (activation == TensorType::F32) return reinterpret_cast<const uint8_t*>(in);
  const QuantizeActivationFn quantize = active_kernels().quantize_activation[type_slot(activation)];
  const size_t row_bytes = tensor_row_bytes(activation, cols);
  thread_local std::vector<uint8_t> converted;
  converted.resize(row_bytes * tokens);
  uint8_t* target = converted.data();
  if (tokens == 1) {
    quantize(in, target, cols);
  } else {
    pool.parallel_for(tokens, [&](size_t begin, size_t end) {
      for (size_t t = begin; t < end; ++t) quantize(in + t * cols, target + t * row_bytes, cols);
    });
  }
  return target;
}

// Rows [begin, end) of a repacked product; begin is a multiple of the group
// size. The kernel blocks tokens and weights itself, and a token's result
// does not depend on the tokens beside it (packed_kernels.h), so products
// asked to be token by token need not be run that way.
void multiply_packed_rows(const WeightMatrix& weight, const uint8_t* activations, size_t activation_row_bytes,
                          size_t tokens, float* out, size_t begin, size_t end) {
  const DotPackedFn dot_packed = active_kernels().dot_packed[static_cast<size_t>(weight.packed_layout)];
  const size_t rows = static_cast<size_t>(weight.rows), cols = static_cast<size_t>(weight.cols);
  const size_t group_bytes = packed_matrix_bytes(weight.packed_layout, kPackedGroupRows, cols);
  const uint8_t* groups = weight.packed + begin / kPackedGroupRows * group_bytes;
  dot_packed(groups, group_bytes, activations, activation_row_bytes, cols, end - begin, tokens, out + begin, rows);
}

// Rows [begin, end) of one product, tiled.
void multiply_rows(const WeightMatrix& weight, const uint8_t* activations, size_t activation_row_bytes, size_t tokens,
                   float* out, size_t begin, size_t end, bool per_token) {
  if (weight.packed) {
    multiply_packed_rows(weight, activations, activation_row_bytes, tokens, out, begin, end);
    return;
  }
  const DotTileFn dot_tile = active_kernels().dot_tile[type_slot(weight.type)];
  const size_t rows = static_cast<size_t>(weight.rows), cols = static_cast<size_t>(weight.cols);
  for (size_t r0 = begin; r0 < end; r0 += kRowBlock) {
    const size_t row_count = std::min(kRowBlock, end - r0);
    const size_t token_block = per_token ? 1 : kTokenBlock;
    for (size_t t0 = 0; t0 < tokens; t0 += token_block) {
      const size_t token_count = std::min(token_block, tokens - t0);
      dot_tile(weight.data + r0 * weight.row_bytes, weight.row_bytes, activations + t0 * activation_row_bytes,
               activation_row_bytes, cols, row_count, token_count, out + t0 * rows + r0, rows);
    }
  }
}

}  // namespace

void matmul(const WeightMatrix& weight, const float* in, size_t tokens, float* out, ThreadPool& pool,
            bool per_token) {
  const WeightMatrix* weights[1] = {&weight};
  float* outs[1] = {out};
  matmul_shared_input(weights, in, tokens, outs, pool, per_token);
}

void matmul_shared_input(std::span<const WeightMatrix* const> weights, const float* in, size_t tokens,
                         std::span<float* const> outs, ThreadPool& pool, bool per_token) {
  if (weights.empty()) return;
  const TensorType activation = activation_type(weights[0]->type);
  const size_t cols = static_cast<size_t>(weights[0]->cols);
  // Work is shared out in units of a repacked group's rows, so that a
  // thread's part starts on a group (stored weights don't mind).
  const auto units_of = [](const WeightMatrix& w) {
    return (static_cast<size_t>(w.rows) + kPackedGroupRows - 1) / kPackedGroupRows;
  };
  size_t total_units = 0;
  for (const WeightMatrix* w : weights) {
    if (activation_type(w->type) != activation || static_cast<size_t>(w->cols) != cols) {
      for (size_t i = 0; i < weights.size(); ++i) matmul(*weights[i], in, tokens, outs[i], pool, per_token);
      return;
    }
    total_units += units_of(*w);
  }
  const uint8_t* activations = convert_activations(activation, in, tokens, cols, pool);
  const size_t activation_row_bytes = tensor_row_bytes(activation, cols);
  // Rows of all products in one range, each thread taking a contiguous part.
  pool.parallel_for(total_units, [&](size_t begin, size_t end) {
    size_t offset = 0;
    for (size_t i = 0; i < weights.size(); ++i) {
      const size_t units = units_of(*weights[i]), rows = static_cast<size_t>(weights[i]->rows);
      const size_t first = std::max(begin, offset), last = std::min(end, offset + units);
      if (first < last) {
        multiply_rows(*weights[i], activations, activation_row_bytes, tokens, outs[i],
                      (first - offset) * kPackedGroupRows, std::min(rows, (last - offset) * kPackedGroupRows),
                      per_token);
      }
      offset += units;
    }
  });
}

void dequantize_matrix_row(const WeightMatrix& weight, int64_t row, float* out) {
  if (row < 0 || row >= weight.rows) {
    throw Error(fmt::format("row {} is outside the matrix ({} rows)", row, weight.rows));
  }
  if (weight.packed) {
    dequantize_packed_row(weight.packed_layout, weight.packed, static_cast<size_t>(weight.cols),
                          static_cast<size_t>(row), out);
    return;
  }
  dequantize_row(weight.type, weight.data + static_cast<size_t>(row) * weight.row_bytes, out,
                 static_cast<size_t>(weight.cols));
}

}  // namespace frugal
