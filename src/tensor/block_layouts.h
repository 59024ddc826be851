// Byte layouts of the block-quantized formats, exactly as ggml stores them in
// GGUF files (ggml-common.h). Every struct is a plain byte image: fp16 fields
// are raw IEEE binary16 bits, multi-byte fields are little-endian.
//
// Rows in a mapped file need not be aligned for these structs, so kernels copy
// each block out with `load_block` instead of casting pointers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace frugal::detail {

// Elements per block of the legacy formats (Q4_0 ... Q8_1).
inline constexpr size_t kLegacyBlockElements = 32;
// Elements per super-block of the K formats (Q2_K ... Q8_K); ggml's QK_K.
inline constexpr size_t kSuperBlockElements = 256;

// d * (q - 8), q a 4-bit value. Element j in the low nibble of qs[j],
// element j + 16 in the high nibble.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};

// d * q + m, same nibble order as Q4_0.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[16];
};

// d * (q - 16), q 5-bit: low 4 bits as in Q4_0, bit 4 of element j is bit j of
// the little-endian 32-bit qh.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[16];
};

// d * q + m, bits as in Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[16];
};

// d * q.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};

// d * q; s = d * sum(q) lets Q4_1/Q5_1 dot products apply their offset m.
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[32];
};

// 16 sub-blocks of 16. scales[j]: low nibble scale, high nibble min.
// Element e = 128*h + 32*k + l (l < 32) is bits 2k..2k+1 of qs[32*h + l].
// Value: d * scale(e/16) * q - dmin * min(e/16).
struct BlockQ2_K {
  uint8_t scales[16];
  uint8_t qs[64];
  uint16_t d;
  uint16_t dmin;
};

// 16 sub-blocks of 16 with signed 6-bit scales (stored +32) packed in 12
// bytes. Low 2 bits of q as in Q2_K; the third bit of element e is bit e/32 of
// hmask[e % 32], and a clear bit means q - 4. Value: d * (scale - 32) * q.
struct BlockQ3_K {
  uint8_t hmask[32];
  uint8_t qs[64];
  uint8_t scales[12];
  uint16_t d;
};

// 8 sub-blocks of 32 with 6-bit scales and mins packed in 12 bytes
// (see unpack_scale_min_k4). Element e = 64*c + l: low nibble of qs[32*c + l]
// for l < 32, high nibble of qs[32*c + l - 32] otherwise.
// Value: d * scale(e/32) * q - dmin * min(e/32).
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[128];
};

// As Q4_K plus a fifth bit: bit e/32 of qh[e % 32].
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};

// 16 sub-blocks of 16 with int8 scales. Element e = 128*h + 32*k + l: low 4
// bits from ql[64*h + l + 32*(k&1)] (low nibble for k < 2, high for k >= 2),
// high 2 bits are bits 2k..2k+1 of qh[32*h + l]. Value: d * scale * (q - 32).
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};

// Activation format for K-quant dot products: float d, bsums[j] = sum of
// qs[16j .. 16j+15] so a weight's per-sub-block min can be applied cheaply.
struct BlockQ8_K {
  float d;
  int8_t qs[256];
  int16_t bsums[16];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);
static_assert(offsetof(BlockQ2_K, d) == 80);
static_assert(offsetof(BlockQ3_K, d) == 108);
static_assert(offsetof(BlockQ6_K, d) == 208);
static_assert(offsetof(BlockQ8_K, bsums) == 260);

template <class Block>
Block load_block(const void* row, size_t index) {
  static_assert(std::is_trivially_copyable_v<Block>);
  Block block;
  std::memcpy(&block, static_cast<const unsigned char*>(row) + index * sizeof(Block), sizeof(Block));
  return block;
}

template <class Block>
void store_block(void* row, size_t index, const Block& block) {
  static_assert(std::is_trivially_copyable_v<Block>);
  std::memcpy(static_cast<unsigned char*>(row) + index * sizeof(Block), &block, sizeof(Block));
}

}  // namespace frugal::detail
