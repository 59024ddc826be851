#include "tensor/matmul.h"

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/quant.h"
#include "tensor/thread_pool.h"

namespace frugal {

void matmul(const WeightMatrix& weight, const float* in, size_t tokens, float* out, ThreadPool& pool) {
  const TensorType activation = activation_type(weight.type);
  const size_t cols = static_cast<size_t>(weight.cols);
  const size_t activation_row_bytes = tensor_row_bytes(activation, cols);
  // F32 activations are used as they are; other formats are converted once
  // per token here rather than once per weight row.
  std::vector<uint8_t> converted;
  const uint8_t* activations = reinterpret_cast<const uint8_t*>(in);
  if (activation != TensorType::F32) {
    converted.resize(activation_row_bytes * tokens);
    pool.parallel_for(tokens, [&](size_t begin, size_t end) {
      for (size_t t = begin; t < end; ++t) {
        quantize_row(activation, in + t * cols, converted.data() + t * activation_row_bytes, cols);
      }
    });
    activations = converted.data();
  }
  const size_t rows = static_cast<size_t>(weight.rows);
  pool.parallel_for(rows, [&](size_t begin, size_t end) {
    // Row blocks keep a few weight rows hot while every token visits them.
    constexpr size_t kRowBlock = 16;
    for (size_t r0 = begin; r0 < end; r0 += kRowBlock) {
      const size_t r1 = std::min(end, r0 + kRowBlock);
      for (size_t t = 0; t < tokens; ++t) {
        const uint8_t* x = activations + t * activation_row_bytes;
        float* y = out + t * rows;
        for (size_t r = r0; r < r1; ++r) {
          y[r] = dot_row(weight.type, weight.data + r * weight.row_bytes, x, cols);
        }
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
