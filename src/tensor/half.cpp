// IEEE binary16 and bfloat16 conversions.

#include <array>
#include <bit>
#include <cmath>
#include <cstdint>

#include "frugal/quant.h"

namespace frugal {
namespace {

uint32_t f16_bits_to_f32_bits(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0x1f) return sign | 0x7f800000u | (mantissa << 13);  // inf, NaN (payload kept)
  if (exponent != 0) return sign | ((exponent + 112) << 23) | (mantissa << 13);  // rebias 15 -> 127
  if (mantissa == 0) return sign;
  // Subnormal: mantissa * 2^-24, exact in float.
  return sign | std::bit_cast<uint32_t>(std::ldexp(static_cast<float>(mantissa), -24));
}

// Every binary16 value decoded once; 256 KiB, built on first use (C++ makes
// the static's initialisation thread-safe).
const std::array<float, 65536>& f16_table() {
  static const std::array<float, 65536> table = [] {
    std::array<float, 65536> values{};
    for (uint32_t h = 0; h < 65536; ++h) {
      values[h] = std::bit_cast<float>(f16_bits_to_f32_bits(static_cast<uint16_t>(h)));
    }
    return values;
  }();
  return table;
}

}  // namespace

float f16_to_f32(uint16_t h) { return f16_table()[h]; }

uint16_t f32_to_f16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;

  if (magnitude > 0x7f800000u) {
    // NaN: keep it a (quiet) NaN with the top payload bits.
    return static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  }
  // 65520 is halfway between 65504 (largest finite) and 65536; ties go to
  // even, which is 65536, i.e. infinity.
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);

  if (magnitude >= 0x38800000u) {
    // Normal in binary16 (>= 2^-14): round away 13 mantissa bits to nearest
    // even; a carry ripples into the exponent as it should.
    const uint32_t rounded = magnitude + 0x0fffu + ((magnitude >> 13) & 1u);
    return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));  // rebias 127 -> 15
  }

  // Subnormal in binary16: value = mantissa24 * 2^(exponent - 150); the result
  // counts units of 2^-24, so shift right by 126 - exponent with RNE.
  const uint32_t exponent = magnitude >> 23;
  const uint32_t shift = 126 - exponent;  // >= 14 here
  if (shift >= 25) return sign;           // below 2^-25: rounds to zero
  const uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
  uint32_t units = mantissa >> shift;
  const uint32_t remainder = mantissa & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (remainder > half || (remainder == half && (units & 1u))) ++units;  // may become the smallest normal
  return static_cast<uint16_t>(sign | units);
}

float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_bf16(float f) {
  const uint32_t bits = std::bit_cast<uint32_t>(f);
  // As ggml: NaN stays NaN (forced quiet), everything else rounds to nearest
  // even, overflowing to infinity.
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace frugal
