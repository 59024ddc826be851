// Dequantization of hand-built blocks. Blocks are assembled byte by byte from
// the GGUF layout description (offsets and bit positions written out here),
// and expected values are computed from that description, independently of
// the library's loops.

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "frugal/quant.h"
#include "frugal/tensor_type.h"
#include "tensor/test_data.h"

namespace frugal {
namespace {

using test::get_u16;
using test::put_f32;
using test::put_u16;
using test::random_bytes;

std::vector<float> dequantize(TensorType type, const std::vector<uint8_t>& bytes, size_t n) {
  std::vector<float> out(n);
  dequantize_row(type, bytes.data(), out.data(), n);
  return out;
}

// ------------------------------------------------------------ legacy blocks

TEST(KnownBlocks, Q8_0) {
  std::vector<uint8_t> block(34);
  put_u16(block, 0, test::kHalfHalf);  // d = 0.5
  for (int j = 0; j < 32; ++j) block[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(j - 3));
  const auto y = dequantize(TensorType::Q8_0, block, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.5f * (j - 3)) << j;
  EXPECT_EQ(y[0], -1.5f);
  EXPECT_EQ(y[31], 14.0f);
}

TEST(KnownBlocks, Q8_1) {
  std::vector<uint8_t> block(36);
  put_u16(block, 0, test::kHalfQuarter);  // d = 0.25
  put_u16(block, 2, 0x5640);             // s: not used by dequantization
  for (int j = 0; j < 32; ++j) block[4 + j] = static_cast<uint8_t>(static_cast<int8_t>(100 - 7 * j));
  const auto y = dequantize(TensorType::Q8_1, block, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], 0.25f * (100 - 7 * j)) << j;
}

TEST(KnownBlocks, Q4_0) {
  // Byte j holds element j in its low nibble and element j+16 in its high one.
  std::vector<uint8_t> block(18);
  put_u16(block, 0, test::kHalfTwo);  // d = 2
  for (int j = 0; j < 16; ++j) block[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  const auto y = dequantize(TensorType::Q4_0, block, 32);
  EXPECT_EQ(y[0], -16.0f);   // (0 - 8) * 2
  EXPECT_EQ(y[5], -6.0f);    // (5 - 8) * 2
  EXPECT_EQ(y[15], 14.0f);   // (15 - 8) * 2
  EXPECT_EQ(y[16], 14.0f);   // (15 - 8) * 2
  EXPECT_EQ(y[20], 6.0f);    // (11 - 8) * 2
  EXPECT_EQ(y[31], -16.0f);  // (0 - 8) * 2
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 2.0f * (j - 8));
    EXPECT_EQ(y[j + 16], 2.0f * (7 - j));
  }
}

TEST(KnownBlocks, Q4_1) {
  std::vector<uint8_t> block(20);
  put_u16(block, 0, test::kHalfHalf);       // d = 0.5
  put_u16(block, 2, test::kHalfMinusOne);   // m = -1
  for (int j = 0; j < 16; ++j) block[4 + j] = static_cast<uint8_t>(j | (((3 * j) % 16) << 4));
  const auto y = dequantize(TensorType::Q4_1, block, 32);
  EXPECT_EQ(y[0], -1.0f);
  EXPECT_EQ(y[15], 6.5f);        // 15 * 0.5 - 1
  EXPECT_EQ(y[16 + 5], 6.5f);    // 15 * 0.5 - 1
  EXPECT_EQ(y[16 + 6], 0.0f);    // (18 % 16) * 0.5 - 1
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * j - 1);
    EXPECT_EQ(y[j + 16], 0.5f * ((3 * j) % 16) - 1);
  }
}

// qh is a little-endian uint32 after d (and m); bit i is bit 4 of element i.
TEST(KnownBlocks, Q5_0) {
  std::vector<uint8_t> block(22);
  put_u16(block, 0, test::kHalfOne);
  const uint32_t qh = 0xA5C3F00Fu;
  for (int b = 0; b < 4; ++b) block[2 + b] = static_cast<uint8_t>(qh >> (8 * b));
  for (int j = 0; j < 16; ++j) block[6 + j] = static_cast<uint8_t>(j | (((5 * j + 1) % 16) << 4));
  const auto y = dequantize(TensorType::Q5_0, block, 32);
  EXPECT_EQ(y[0], 0.0f);     // 0 | 16 (bit 0 set) - 16
  EXPECT_EQ(y[4], -12.0f);   // 4 | 0 (bit 4 clear) - 16
  EXPECT_EQ(y[31], 12.0f);   // ((5*15+1)%16 = 12) | 16 (bit 31 set) - 16
  for (int e = 0; e < 32; ++e) {
    const int low = e < 16 ? e : (5 * (e - 16) + 1) % 16;
    const int high = ((qh >> e) & 1) << 4;
    EXPECT_EQ(y[e], static_cast<float>((low | high) - 16)) << e;
  }
}

TEST(KnownBlocks, Q5_1) {
  std::vector<uint8_t> block(24);
  put_u16(block, 0, test::kHalfQuarter);    // d = 0.25
  put_u16(block, 2, test::kHalfMinusOne);   // m = -1
  const uint32_t qh = 0x0F0F3C3Cu;
  for (int b = 0; b < 4; ++b) block[4 + b] = static_cast<uint8_t>(qh >> (8 * b));
  for (int j = 0; j < 16; ++j) block[8 + j] = static_cast<uint8_t>((15 - j) | (j << 4));
  const auto y = dequantize(TensorType::Q5_1, block, 32);
  EXPECT_EQ(y[2], 0.25f * (13 + 16) - 1);  // bit 2 set
  EXPECT_EQ(y[16], 0.25f * 16 - 1);        // element 16: nibble 0, bit 16 set
  for (int e = 0; e < 32; ++e) {
    const int low = e < 16 ? 15 - e : e - 16;
    const int high = ((qh >> e) & 1) << 4;
    EXPECT_EQ(y[e], 0.25f * (low | high) - 1) << e;
  }
}

// ----------------------------------------------------------------- K blocks
// Element e of a super-block is written e = 128*h + 32*k + l with l < 32 where
// the 2-bit layouts (Q2_K, Q3_K, Q6_K high bits) are concerned.

// Q2_K / Q3_K: 2 bits of element e at bits 2k of qs[32h + l].
void put_2bit(std::vector<uint8_t>& bytes, size_t qs_offset, int e, int level) {
  const int h = e / 128, k = (e % 128) / 32, l = e % 32;
  bytes[qs_offset + 32 * h + l] |= static_cast<uint8_t>((level & 3) << (2 * k));
}

TEST(KnownBlocks, Q2_K) {
  // scales[16] @0 (low nibble scale, high nibble min), qs[64] @16, d @80, dmin @82.
  std::vector<uint8_t> block(84);
  for (int j = 0; j < 16; ++j) block[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  auto level = [](int e) { return (e / 3) % 4; };
  for (int e = 0; e < 256; ++e) put_2bit(block, 16, e, level(e));
  put_u16(block, 80, test::kHalfHalf);     // d = 0.5
  put_u16(block, 82, test::kHalfQuarter);  // dmin = 0.25
  const auto y = dequantize(TensorType::Q2_K, block, 256);
  EXPECT_EQ(y[0], -3.75f);   // 0.5*0*0 - 0.25*15
  EXPECT_EQ(y[130], 10.25f); // sub-block 8: 0.5*8*3 - 0.25*7
  EXPECT_EQ(y[255], 7.5f);   // sub-block 15: 0.5*15*1 - 0
  for (int e = 0; e < 256; ++e) {
    const int j = e / 16;
    EXPECT_FLOAT_EQ(y[e], 0.5f * j * level(e) - 0.25f * (15 - j)) << e;
  }
}

TEST(KnownBlocks, Q2_K_RandomBytes) {
  auto block = random_bytes(84, 21);
  put_u16(block, 80, 0x2E66);  // d ~ 0.1
  put_u16(block, 82, 0x3266);  // dmin ~ 0.2
  const float d = f16_to_f32(0x2E66), dmin = f16_to_f32(0x3266);
  const auto y = dequantize(TensorType::Q2_K, block, 256);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const int q = (block[16 + 32 * h + l] >> (2 * k)) & 3;
    const uint8_t sc = block[e / 16];
    EXPECT_FLOAT_EQ(y[e], d * (sc & 15) * q - dmin * (sc >> 4)) << e;
  }
}

// Q3_K: hmask[32] @0, qs[64] @32, scales[12] @96, d @108. Scale j (6 bits,
// stored +32): low nibble in byte j (j < 8) or the high nibble of byte j-8;
// top two bits at bit 2*(j/4) of byte 96+8+j%4.
void put_q3_scale(std::vector<uint8_t>& block, int j, int stored) {
  if (j < 8) {
    block[96 + j] |= static_cast<uint8_t>(stored & 15);
  } else {
    block[96 + j - 8] |= static_cast<uint8_t>((stored & 15) << 4);
  }
  block[96 + 8 + j % 4] |= static_cast<uint8_t>((stored >> 4) << (2 * (j / 4)));
}

TEST(KnownBlocks, Q3_K) {
  std::vector<uint8_t> block(110);
  for (int j = 0; j < 16; ++j) put_q3_scale(block, j, 4 * j);  // signed scale 4j - 32
  // Level e%8 in 0..7: low 2 bits in qs, bit 2 in hmask[e%32] at bit e/32;
  // the value is level - 4.
  for (int e = 0; e < 256; ++e) {
    const int level = e % 8;
    put_2bit(block, 32, e, level & 3);
    if (level & 4) block[e % 32] |= static_cast<uint8_t>(1 << (e / 32));
  }
  put_u16(block, 108, test::kHalfHalf);
  const auto y = dequantize(TensorType::Q3_K, block, 256);
  EXPECT_EQ(y[0], 64.0f);    // 0.5 * (0 - 32) * (0 - 4)
  EXPECT_EQ(y[77], -8.0f);   // 0.5 * (16 - 32) * (5 - 4)
  EXPECT_EQ(y[100], 0.0f);   // level 4 -> 0
  EXPECT_EQ(y[255], 42.0f);  // 0.5 * (60 - 32) * (7 - 4)
  for (int e = 0; e < 256; ++e) {
    EXPECT_FLOAT_EQ(y[e], 0.5f * (4 * (e / 16) - 32) * ((e % 8) - 4)) << e;
  }
}

TEST(KnownBlocks, Q3_K_RandomBytes) {
  auto block = random_bytes(110, 33);
  put_u16(block, 108, 0x2A00);  // d = 0.046875
  const float d = f16_to_f32(0x2A00);
  const auto y = dequantize(TensorType::Q3_K, block, 256);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32, j = e / 16;
    const int low2 = (block[32 + 32 * h + l] >> (2 * k)) & 3;
    const bool high = (block[e % 32] >> (e / 32)) & 1;
    const int scale_low = j < 8 ? block[96 + j] & 15 : block[96 + j - 8] >> 4;
    const int scale_high = (block[96 + 8 + j % 4] >> (2 * (j / 4))) & 3;
    const int scale = (scale_low | (scale_high << 4)) - 32;
    EXPECT_FLOAT_EQ(y[e], d * scale * (low2 - (high ? 0 : 4))) << e;
  }
}

// Q4_K/Q5_K scales: 12 bytes at offset 4. Sub-block j < 4: scale in the low 6
// bits of byte j, min in byte j+4. j >= 4: low nibbles in byte j+4 (scale low,
// min high), top two bits in bits 6-7 of bytes j-4 (scale) and j (min).
void put_k4_scales(std::vector<uint8_t>& block, const int* scales, const int* mins) {
  uint8_t* s = block.data() + 4;
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      s[j] |= static_cast<uint8_t>(scales[j]);
      s[j + 4] |= static_cast<uint8_t>(mins[j]);
    } else {
      s[j + 4] = static_cast<uint8_t>((scales[j] & 15) | ((mins[j] & 15) << 4));
      s[j - 4] |= static_cast<uint8_t>((scales[j] >> 4) << 6);
      s[j] |= static_cast<uint8_t>((mins[j] >> 4) << 6);
    }
  }
}

// Q4_K/Q5_K nibbles: element e = 64c + r; r < 32 in the low nibble of
// qs[32c + r], otherwise the high nibble of qs[32c + r - 32].
void put_k4_nibble(std::vector<uint8_t>& block, size_t qs_offset, int e, int level) {
  const int c = e / 64, r = e % 64;
  block[qs_offset + 32 * c + r % 32] |= static_cast<uint8_t>((level & 15) << (r < 32 ? 0 : 4));
}

constexpr int kK4Scales[8] = {1, 2, 3, 4, 17, 33, 50, 63};
constexpr int kK4Mins[8] = {0, 1, 2, 3, 20, 40, 60, 63};

TEST(KnownBlocks, Q4_K) {
  // d @0, dmin @2, scales @4, qs[128] @16.
  std::vector<uint8_t> block(144);
  put_u16(block, 0, test::kHalfOne);
  put_u16(block, 2, test::kHalfHalf);
  put_k4_scales(block, kK4Scales, kK4Mins);
  auto level = [](int e) { return (e * 7 + 3) % 16; };
  for (int e = 0; e < 256; ++e) put_k4_nibble(block, 16, e, level(e));
  const auto y = dequantize(TensorType::Q4_K, block, 256);
  EXPECT_EQ(y[0], 3.0f);      // 1 * 3 - 0.5 * 0
  EXPECT_EQ(y[170], 277.0f);  // sub-block 5: 33 * ((7*170 + 3) % 16 = 9) - 0.5 * 40
  for (int e = 0; e < 256; ++e) {
    const int j = e / 32;
    EXPECT_FLOAT_EQ(y[e], 1.0f * kK4Scales[j] * level(e) - 0.5f * kK4Mins[j]) << e;
  }
}

TEST(KnownBlocks, Q5_K) {
  // d @0, dmin @2, scales @4, qh[32] @16, qs[128] @48. Bit 4 of element e is
  // bit e/32 of qh[e % 32].
  std::vector<uint8_t> block(176);
  put_u16(block, 0, test::kHalfOne);
  put_u16(block, 2, test::kHalfHalf);
  put_k4_scales(block, kK4Scales, kK4Mins);
  auto level = [](int e) { return (e * 3) % 32; };
  for (int e = 0; e < 256; ++e) {
    put_k4_nibble(block, 48, e, level(e) & 15);
    if (level(e) & 16) block[16 + e % 32] |= static_cast<uint8_t>(1 << (e / 32));
  }
  const auto y = dequantize(TensorType::Q5_K, block, 256);
  EXPECT_EQ(y[33], 5.5f);     // sub-block 1: 2 * 3 - 0.5 * 1
  EXPECT_EQ(y[200], 1170.0f); // sub-block 6: 50 * 24 - 0.5 * 60
  for (int e = 0; e < 256; ++e) {
    const int j = e / 32;
    EXPECT_FLOAT_EQ(y[e], 1.0f * kK4Scales[j] * level(e) - 0.5f * kK4Mins[j]) << e;
  }
}

TEST(KnownBlocks, Q6_K) {
  // ql[128] @0, qh[64] @128, scales[16] (int8) @192, d @208. Element
  // e = 128h + 32k + l: low 4 bits in ql[64h + 32*(k%2) + l] (low nibble for
  // k < 2, high for k >= 2), top 2 bits at bits 2k of qh[32h + l]; value
  // d * scale[e/16] * (q - 32).
  std::vector<uint8_t> block(210);
  auto level = [](int e) { return (e * 7) % 64; };
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    block[64 * h + 32 * (k % 2) + l] |= static_cast<uint8_t>((level(e) & 15) << (k < 2 ? 0 : 4));
    block[128 + 32 * h + l] |= static_cast<uint8_t>((level(e) >> 4) << (2 * k));
  }
  auto scale = [](int j) { return j % 2 ? -(j + 1) : j + 1; };
  for (int j = 0; j < 16; ++j) block[192 + j] = static_cast<uint8_t>(static_cast<int8_t>(scale(j)));
  put_u16(block, 208, test::kHalfQuarter);
  const auto y = dequantize(TensorType::Q6_K, block, 256);
  EXPECT_EQ(y[0], -8.0f);     // 0.25 * 1 * (0 - 32)
  EXPECT_EQ(y[100], 49.0f);   // sub-block 6: 0.25 * 7 * (60 - 32)
  EXPECT_EQ(y[255], -100.0f); // sub-block 15: 0.25 * -16 * (57 - 32)
  for (int e = 0; e < 256; ++e) {
    EXPECT_FLOAT_EQ(y[e], 0.25f * scale(e / 16) * (level(e) - 32)) << e;
  }
}

TEST(KnownBlocks, Q6_K_RandomBytes) {
  auto block = random_bytes(210, 66);
  put_u16(block, 208, 0x2C00);  // d = 0.0625
  const auto y = dequantize(TensorType::Q6_K, block, 256);
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const uint8_t low_byte = block[64 * h + 32 * (k % 2) + l];
    const int low = k < 2 ? low_byte & 15 : low_byte >> 4;
    const int high = (block[128 + 32 * h + l] >> (2 * k)) & 3;
    const int sc = static_cast<int8_t>(block[192 + e / 16]);
    EXPECT_FLOAT_EQ(y[e], 0.0625f * sc * ((low | (high << 4)) - 32)) << e;
  }
}

TEST(KnownBlocks, Q8_K) {
  // float d @0, qs[256] @4, bsums[16] @260.
  std::vector<uint8_t> block(292);
  put_f32(block, 0, 0.125f);
  for (int e = 0; e < 256; ++e) block[4 + e] = static_cast<uint8_t>(static_cast<int8_t>(e - 128));
  const auto y = dequantize(TensorType::Q8_K, block, 256);
  EXPECT_EQ(y[0], -16.0f);
  EXPECT_EQ(y[255], 15.875f);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], 0.125f * (e - 128));
}

TEST(KnownBlocks, MultipleBlocksAreConsecutive) {
  // Two Q8_0 blocks with different scales.
  std::vector<uint8_t> row(68);
  put_u16(row, 0, test::kHalfOne);
  put_u16(row, 34, test::kHalfTwo);
  for (int j = 0; j < 32; ++j) {
    row[2 + j] = static_cast<uint8_t>(j);
    row[36 + j] = static_cast<uint8_t>(j);
  }
  const auto y = dequantize(TensorType::Q8_0, row, 64);
  EXPECT_EQ(y[31], 31.0f);
  EXPECT_EQ(y[32], 0.0f);
  EXPECT_EQ(y[63], 62.0f);
}

TEST(KnownBlocks, PlainFormats) {
  std::vector<uint8_t> f16(6);
  put_u16(f16, 0, 0x3C00);
  put_u16(f16, 2, 0xC000);
  put_u16(f16, 4, 0x7BFF);
  EXPECT_EQ(dequantize(TensorType::F16, f16, 3), (std::vector<float>{1.0f, -2.0f, 65504.0f}));
  std::vector<uint8_t> bf16(4);
  put_u16(bf16, 0, 0x3F80);
  put_u16(bf16, 2, 0x4049);
  EXPECT_EQ(dequantize(TensorType::BF16, bf16, 2), (std::vector<float>{1.0f, 3.140625f}));
  std::vector<uint8_t> f32(8);
  put_f32(f32, 0, 1.5f);
  put_f32(f32, 4, -7.25f);
  EXPECT_EQ(dequantize(TensorType::F32, f32, 2), (std::vector<float>{1.5f, -7.25f}));
}

}  // namespace
}  // namespace frugal
