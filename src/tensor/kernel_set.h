// The table of compute kernels for one instruction-set level.
//
// Kernels are written with intrinsics rather than Highway: their speed rests
// on x86-specific instructions (VNNI dpbusd with unsigned weights, vpermt2
// transposes, masked tails) that portable operations would spell with extra
// instructions; the scalar level covers every other CPU, and a NEON level
// would be one more table. Every entry is
// filled: levels start from the scalar table and replace what they speed up,
// so a format without a SIMD kernel still works everywhere.
//
// Kernels live in files named *_avx2.cpp / *_avx512.cpp, compiled with those
// instruction sets enabled; they are only called after cpu_supports() said
// yes. Such files must not define or instantiate inline functions or
// templates shared with other files (no STL containers or algorithms there):
// the linker could keep their AVX copy for the whole program.
#pragma once

#include <cstddef>
#include <cstdint>

#include "frugal/tensor_type.h"
#include "tensor/cpu_features.h"
#include "tensor/packed_weights.h"

namespace frugal {

// out[t * out_stride + r] = dot(weight row r, activation row t) for r < rows,
// t < tokens. Rows are `n` elements; weight rows are `weight_stride` bytes
// apart, activation rows `activation_stride` bytes apart, activations already
// in the format the weight type pairs with (frugal/quant.h).
using DotTileFn = void (*)(const uint8_t* weights, size_t weight_stride, const uint8_t* activations,
                           size_t activation_stride, size_t n, size_t rows, size_t tokens, float* out,
                           size_t out_stride);
// Rows [0, rows) of a repacked matrix (packed_weights.h) times `tokens`
// Q8_0 activation rows: `groups` points at the first 16-row group, each
// group `group_bytes` after the one before; out as for DotTileFn.
using DotPackedFn = void (*)(const uint8_t* groups, size_t group_bytes, const uint8_t* activations,
                             size_t activation_stride, size_t n, size_t rows, size_t tokens, float* out,
                             size_t out_stride);
// Converts n F32 values to an activation format (bit-identical across levels).
using QuantizeActivationFn = void (*)(const float* x, void* out, size_t n);

inline constexpr size_t kTensorTypeSlots = 32;

// How far ahead a decode kernel (one token) prefetches weights: the first
// whole group of the R rows a micro-tile reads that lies at least this many
// bytes ahead. Memory latency sets the distance, not the row length: one
// group ahead was too near for short rows (SmolLM2-135M's 576-element rows,
// 1 thread on Zen 5: Q4_0 decode 1.5x, Q8_0 1.35x with 8 KiB).
// (The rounding is written out in each kernel: no shared inline functions.)
inline constexpr size_t kDecodePrefetchBytes = 8192;

struct KernelSet {
  Isa isa = Isa::Scalar;
  DotTileFn dot_tile[kTensorTypeSlots] = {};                         // by weight type id
  QuantizeActivationFn quantize_activation[kTensorTypeSlots] = {};  // by activation type id
  // By PackedLayout; null where the level has no kernel for the layout (the
  // weights then stay as stored).
  DotPackedFn dot_packed[kPackedLayoutSlots] = {};
  float (*dot_f32)(const float* a, const float* b, size_t n) = nullptr;
  void (*axpy_f32)(float alpha, const float* x, float* y, size_t n) = nullptr;  // y += alpha * x
  // Element-wise and row operations of the transformer (ops_*.cpp).
  // out = x / sqrt(mean(x^2) + eps) * weight, the sum of squares in double.
  void (*rms_norm)(const float* x, const float* weight, float* out, size_t n, float eps) = nullptr;
  void (*swiglu)(float* gate, const float* up, size_t n) = nullptr;  // gate = silu(gate) * up
  void (*softmax)(float* x, size_t n) = nullptr;                     // in place
  // out[i] += sum_j weights[j] * rows[j * row_stride + i] for i < n, added
  // in order of j: the probability-weighted sum of value rows in attention.
  // Summing rows in two calls gives bit for bit what one call over all of
  // them gives, so split storage (the KV trie's pages) changes no result.
  void (*weighted_sum_f32)(const float* weights, size_t count, const float* rows, size_t row_stride, float* out,
                           size_t n) = nullptr;
  // Several weighted sums over the same rows, read once: out[o * out_stride
  // + i] += sum_j weights[o * weight_stride + j] * rows[j * row_stride + i]
  // for o < outputs (grouped-query attention: the heads sharing values).
  void (*weighted_sums_f32)(const float* weights, size_t weight_stride, size_t outputs, size_t count,
                            const float* rows, size_t row_stride, float* out, size_t out_stride, size_t n) = nullptr;
  void (*weighted_sums_f16)(const float* weights, size_t weight_stride, size_t outputs, size_t count,
                            const uint16_t* rows, size_t row_stride, float* out, size_t out_stride,
                            size_t n) = nullptr;
  // scores[q * score_stride + j] = dot(key row j, query q) for `count` key
  // rows `key_stride` elements apart and `query_count` F32 rows
  // `query_stride` floats apart, `head_size` elements each: attention's few
  // queries against many short keys (the dot tiles are shaped for long
  // rows). Each key's score does not depend on the keys beside it in a call.
  void (*key_scores_f32)(const float* keys, size_t key_stride, size_t count, const float* queries,
                         size_t query_stride, size_t query_count, size_t head_size, float* scores,
                         size_t score_stride) = nullptr;
  void (*key_scores_f16)(const uint16_t* keys, size_t key_stride, size_t count, const float* queries,
                         size_t query_stride, size_t query_count, size_t head_size, float* scores,
                         size_t score_stride) = nullptr;
  // The same over F16 rows (an F16 KV cache's values), read as they are.
  void (*weighted_sum_f16)(const float* weights, size_t count, const uint16_t* rows, size_t row_stride, float* out,
                           size_t n) = nullptr;
  // Rows of a block-quantized KV cache to F32, for attention to read a piece
  // at a time from cache-sized scratch: `count` rows `row_bytes` apart, the
  // first `blocks` blocks of each (one head's slice) -> out[count][blocks *
  // 32]. ggml's Q8_0 and Q4_0 block layouts (Q4_H is stored as Q4_0).
  void (*kv_rows_q8_0)(const uint8_t* rows, size_t row_bytes, size_t count, size_t blocks, float* out) = nullptr;
  void (*kv_rows_q4_0)(const uint8_t* rows, size_t row_bytes, size_t count, size_t blocks, float* out) = nullptr;
};

// The table of a level (the CPU must support it).
const KernelSet& kernel_set(Isa isa);
// The table of selected_isa(), chosen once.
const KernelSet& active_kernels();

// Filled by the level files; each starts from a copy of the scalar table
// (AVX-512 also starts from the AVX2 entries).
void install_scalar_kernels(KernelSet& set);
void install_avx2_kernels(KernelSet& set);    // kernels_avx2.cpp: calls the two below
void install_avx512_kernels(KernelSet& set);  // kernels_avx512.cpp: likewise
void install_legacy_avx2(KernelSet& set);     // dot_legacy_avx2.cpp: F32/F16/BF16, Q4_0..Q8_0, Q8_0/Q8_1 quantizers
void install_legacy_avx512(KernelSet& set);   // dot_legacy_avx512.cpp
void install_kquant_avx2(KernelSet& set);     // dot_kquant_avx2.cpp: Q2_K..Q6_K, Q8_K quantizer
void install_kquant_avx512(KernelSet& set);   // dot_kquant_avx512.cpp
void install_packed_avx2(KernelSet& set);    // dot_packed_avx2.cpp: repacked weights (packed_kernels.h)
void install_packed_avx512(KernelSet& set);  // dot_packed_avx512.cpp: likewise
void install_ops_avx2(KernelSet& set);        // ops_avx2.cpp: swiglu, softmax, weighted sums
void install_ops_avx512(KernelSet& set);      // ops_avx512.cpp

inline size_t type_slot(TensorType type) { return static_cast<size_t>(type) % kTensorTypeSlots; }

}  // namespace frugal
