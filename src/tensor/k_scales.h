// Packed sub-block scales of the K formats, shared by dequantizers,
// quantizers and dot products.
#pragma once

#include <cstdint>

namespace frugal::detail {

// Q4_K/Q5_K: 6-bit scale and min of sub-block j (0..7) from the 12 packed
// bytes. Sub-blocks 0-3 use the low 6 bits of bytes j (scale) and j+4 (min);
// sub-blocks 4-7 take their low 4 bits from the nibbles of byte j+4 and their
// top 2 bits from the spare top bits of bytes j-4 (scale) and j (min).
inline void unpack_scale_min_k4(int j, const uint8_t* packed, uint8_t* scale, uint8_t* min) {
  if (j < 4) {
    *scale = packed[j] & 63;
    *min = packed[j + 4] & 63;
  } else {
    *scale = static_cast<uint8_t>((packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4));
    *min = static_cast<uint8_t>((packed[j + 4] >> 4) | ((packed[j] >> 6) << 4));
  }
}

// Inverse of unpack_scale_min_k4; `packed` must start zeroed.
inline void pack_scale_min_k4(int j, uint8_t scale, uint8_t min, uint8_t* packed) {
  if (j < 4) {
    packed[j] = static_cast<uint8_t>(packed[j] | scale);
    packed[j + 4] = static_cast<uint8_t>(packed[j + 4] | min);
  } else {
    packed[j + 4] = static_cast<uint8_t>((scale & 0x0F) | ((min & 0x0F) << 4));
    packed[j - 4] = static_cast<uint8_t>(packed[j - 4] | ((scale >> 4) << 6));
    packed[j] = static_cast<uint8_t>(packed[j] | ((min >> 4) << 6));
  }
}

// Q3_K's 16 signed 6-bit scales (stored +32) in 12 bytes: low nibbles in
// bytes 0-7 (sub-blocks 0-7 in the low nibble, 8-15 in the high nibble), top
// two bits of sub-block j at bit 2*(j/4) of byte 8 + j%4. Returns scale - 32.
inline int q3_k_scale(const uint8_t* packed, int j) {
  const int low = j < 8 ? packed[j] & 0x0F : packed[j - 8] >> 4;
  const int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low | (high << 4)) - 32;
}

}  // namespace frugal::detail
