// Matrix products between stored weights (any tensor format, read in place
// from the mapped file) and F32 activations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "frugal/tensor_type.h"
#include "tensor/packed_weights.h"

namespace frugal {

class ThreadPool;

// A 2-D weight matrix as stored in GGUF: `rows` rows of `cols` elements, each
// row `row_bytes` long, contiguous. When `packed` is set, products and row
// reads use that copy (packed_weights.h) and never touch `data`.
struct WeightMatrix {
  TensorType type = TensorType::F32;
  const uint8_t* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  size_t row_bytes = 0;
  PackedLayout packed_layout = PackedLayout::None;
  const uint8_t* packed = nullptr;
};

// out[t * weight.rows + r] = dot(weight row r, in[t * weight.cols ...]) for
// t < tokens. Activations are converted once to the format the weight type
// pairs with (see frugal/quant.h), then rows are split across threads.
// `per_token`: multiply each token on its own (a rows block is still read
// from memory once; later tokens find it in cache), so every token's result
// is bit for bit what a batch of that token alone gives. Beam search uses it
// to keep batched beams identical to beams run one by one. Repacked weights
// give that in any batch, so they take all tokens at once either way.
void matmul(const WeightMatrix& weight, const float* in, size_t tokens, float* out, ThreadPool& pool,
            bool per_token = false);

// Several products of one input (Q, K and V; gate and up): the activations
// are converted once and all rows are shared out in one parallel loop, which
// matters when decoding (each parallel loop costs a synchronisation).
// outs[i] receives tokens x weights[i]->rows values. Weights whose formats
// pair with different activation formats are multiplied one by one.
void matmul_shared_input(std::span<const WeightMatrix* const> weights, const float* in, size_t tokens,
                         std::span<float* const> outs, ThreadPool& pool, bool per_token = false);

// Copies row `row` of `weight` into `out` as F32 (embedding lookup).
void dequantize_matrix_row(const WeightMatrix& weight, int64_t row, float* out);

}  // namespace frugal
