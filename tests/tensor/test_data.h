// Helpers shared by the tensor tests: seeded test data and little-endian byte
// builders for hand-made blocks.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace frugal::test {

inline std::vector<float> gaussian(size_t n, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> values(n);
  for (auto& v : values) v = dist(rng);
  return values;
}

inline std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> bytes(n);
  for (auto& b : bytes) b = static_cast<uint8_t>(rng() & 0xff);
  return bytes;
}

inline void put_u16(std::vector<uint8_t>& bytes, size_t offset, uint16_t value) {
  bytes[offset] = static_cast<uint8_t>(value & 0xff);
  bytes[offset + 1] = static_cast<uint8_t>(value >> 8);
}

inline uint16_t get_u16(const std::vector<uint8_t>& bytes, size_t offset) {
  return static_cast<uint16_t>(bytes[offset] | (bytes[offset + 1] << 8));
}

inline void put_f32(std::vector<uint8_t>& bytes, size_t offset, float value) {
  std::memcpy(bytes.data() + offset, &value, 4);
}

inline float get_f32(const std::vector<uint8_t>& bytes, size_t offset) {
  float value;
  std::memcpy(&value, bytes.data() + offset, 4);
  return value;
}

// Some binary16 bit patterns used to build blocks.
inline constexpr uint16_t kHalfOne = 0x3C00;      // 1.0
inline constexpr uint16_t kHalfTwo = 0x4000;      // 2.0
inline constexpr uint16_t kHalfHalf = 0x3800;     // 0.5
inline constexpr uint16_t kHalfQuarter = 0x3400;  // 0.25
inline constexpr uint16_t kHalfMinusOne = 0xBC00; // -1.0

}  // namespace frugal::test
