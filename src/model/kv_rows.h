// Key and value rows in every KvPrecision: written from the forward pass's
// F32, read back to F32 (conversions, context shifts), and the Hadamard turn
// of Q4_H.
#pragma once

#include <cstddef>

#include "frugal/kv_precision.h"

namespace frugal {

// A row of n keys or values into a cache or store of `precision`: F16 rounds
// to nearest; Q8_0 and Q4_0 quantize as ggml does; Q4_H turns each block
// (rotate_kv_blocks) and quantizes it with a least-squares scale. The same
// bits everywhere, so a store and a cache of one type agree.
void store_kv_row(const float* src, void* dst, size_t n, KvPrecision precision);
// The inverse: n values as F32, Q4_H turned back.
void load_kv_row(const void* src, KvPrecision precision, float* dst, size_t n);
// A row from one precision to another (through F32; copied when the same).
void convert_kv_row(const void* src, KvPrecision from, void* dst, KvPrecision to, size_t n);

// Whether attention must turn its queries and outputs (rotate_kv_blocks)
// to read rows of this precision.
inline bool kv_rotated(KvPrecision precision) { return precision == KvPrecision::Q4_H; }
// x[0..n) in blocks of kKvQuantBlock, each multiplied by the orthonormal
// 32 x 32 Hadamard matrix, which is its own inverse (n a multiple of 32).
void rotate_kv_blocks(float* x, size_t n);

}  // namespace frugal
