// Weights repacked once at load into a layout made for the SIMD width.
//
// GGUF stores a quantized matrix row by row, block by block (34 bytes per
// Q8_0 block: an fp16 scale, then 32 quants). A decode kernel that reads it
// in place must gather the quants out of odd-sized blocks and reduce each
// row horizontally; on CPUs where cross-lane permutes are slow (Zen 4 splits
// AVX-512 into two halves) that, not memory, limits decode. Repacked, 16 rows
// are interleaved so that int32 lane r of a 64-byte vector belongs to row r:
//
//   group g (rows 16g .. 16g+15), block k (elements 32k .. 32k+31):
//     Q8_0x16: 8 vectors, vector j = quants 4j..4j+3 of rows 0..15, stored
//              as unsigned bytes (q + 128); then the 16 fp16 d.        544 B
//     Q4_0x16: 4 vectors, vector j = bytes 4j..4j+3 of each row's qs (low
//              nibbles: elements 4j..4j+3, high: 16+4j..16+4j+3); then the
//              16 fp16 d.                                               288 B
//     Q5_0x16: as Q4_0, then one vector of each row's 32 fifth bits, moved
//              so that the bits of a quant vector's 4 elements sit at bit 4
//              of their bytes after one shift: element e < 16 (low nibble
//              of vector e/4, byte e%4) at bit 8*(e%4) + 4 + e/4, element
//              e >= 16 at bit 8*(e%4) + (e-16)/4 (shift left by 4 - that);
//              then the 16 d.                                           352 B
//     Q4_1x16, Q5_1x16: as Q4_0 / Q5_0, then the 16 d, then the 16 fp16 m.
//
//   K formats, per group and super-block (elements 256k .. 256k+255):
//     Q4_Kx16: 32 vectors, vector v = qs bytes 4v..4v+3 of each row (low
//              nibbles: sub-block 2(v/8), high: 2(v/8)+1); then per
//              sub-block s the 16 rows' 6-bit scales as bytes (8 x 16), the
//              mins likewise, the 16 fp16 d and the 16 fp16 dmin.     2368 B
//              (scales unpacked: 64 bytes more than 16 stored rows)
//     Q6_Kx16: 16 steps (h = 0..1, i = 0..7) of three vectors (lane = row):
//              ql bytes 64h+4i.., ql bytes 64h+32+4i.., qh bytes 32h+4i..
//              (in the order the kernel reads them, so decode streams
//              forward); then per 16-element sub-block the 16 rows' int8
//              scales (16 x 16), then the 16 fp16 d.                   3360 B
//
// Groups follow one another, each holding all its blocks; a last group with
// fewer than 16 rows repeats its last row. The bytes per group and block are
// those of 16 stored rows (Q4_K: 2.8% more): a repacked matrix takes about
// the file's size, and the mapped pages it replaces are given back (see
// Model loading).
#pragma once

#include <cstddef>
#include <cstdint>

#include "frugal/tensor_type.h"

namespace frugal {

struct WeightMatrix;
class ThreadPool;

enum class PackedLayout : uint8_t { None = 0, Q8_0x16, Q4_0x16, Q4_1x16, Q5_0x16, Q5_1x16, Q4_Kx16, Q6_Kx16 };
inline constexpr size_t kPackedLayoutSlots = 8;
inline constexpr size_t kPackedGroupRows = 16;

// The layout a stored type repacks into (None: it stays as stored).
PackedLayout packed_layout_for(TensorType type);
const char* packed_layout_name(PackedLayout layout);
// Elements per block of a layout (32, or 256 for the K formats).
size_t packed_block_elements(PackedLayout layout);
// Bytes of one group and block.
size_t packed_group_block_bytes(PackedLayout layout);
// Bytes of a whole repacked matrix.
size_t packed_matrix_bytes(PackedLayout layout, size_t rows, size_t cols);

// Repacks groups [group_begin, group_end) of `weight` (stored layout) into
// `out` (the whole matrix's buffer, packed_matrix_bytes long).
void pack_matrix_groups(PackedLayout layout, const WeightMatrix& weight, size_t group_begin, size_t group_end,
                        uint8_t* out);

// Row `row` of a repacked matrix as F32 (exactly what the stored row gives).
void dequantize_packed_row(PackedLayout layout, const uint8_t* packed, size_t cols, size_t row, float* out);

}  // namespace frugal
