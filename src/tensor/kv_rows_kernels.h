// Block rows of a quantized KV cache to F32 (KernelSet::kv_rows_*), written
// once over a SIMD target and instantiated per instruction-set level. A
// target T gives: `width` floats per vector, `Vec`, set1(float),
// from_i8(const int8_t*) (width signed bytes to floats), mul, store. A block
// is 2 bytes of F16 scale, then its quants (ggml's Q8_0 and Q4_0 layouts).
// Each level's file compiles this with its own instruction set, so all of
// it sits in an anonymous namespace: every file gets its own copy
// (kernel_set.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include <immintrin.h>

namespace frugal {
namespace {

// Q4_0's 16 bytes to 32 signed levels: element i in the low nibble of byte
// i, element i + 16 in the high one, both minus 8 (SSE2, on every level).
inline void unpack_q4_0(const uint8_t* packed, int8_t* levels) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(packed));
  const __m128i low = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(levels), _mm_sub_epi8(_mm_and_si128(bytes, low), eight));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(levels + 16),
                   _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), low), eight));
}

template <class T>
inline void scale_levels(float scale, const int8_t* levels, float* out) {
  const typename T::Vec d = T::set1(scale);
  for (size_t i = 0; i < 32; i += T::width) T::store(out + i, T::mul(d, T::from_i8(levels + i)));
}

inline float block_scale(const uint8_t* block) {
  uint16_t bits;
  std::memcpy(&bits, block, 2);
  return _cvtsh_ss(bits);
}

template <class T>
void kv_rows_q8_0(const uint8_t* rows, size_t row_bytes, size_t count, size_t blocks, float* out) {
  for (size_t j = 0; j < count; ++j) {
    const uint8_t* block = rows + j * row_bytes;
    for (size_t b = 0; b < blocks; ++b, block += 34, out += 32) {
      scale_levels<T>(block_scale(block), reinterpret_cast<const int8_t*>(block + 2), out);
    }
  }
}

template <class T>
void kv_rows_q4_0(const uint8_t* rows, size_t row_bytes, size_t count, size_t blocks, float* out) {
  alignas(16) int8_t levels[32];
  for (size_t j = 0; j < count; ++j) {
    const uint8_t* block = rows + j * row_bytes;
    for (size_t b = 0; b < blocks; ++b, block += 18, out += 32) {
      unpack_q4_0(block + 2, levels);
      scale_levels<T>(block_scale(block), levels, out);
    }
  }
}

}  // namespace
}  // namespace frugal
