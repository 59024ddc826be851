// Internal to the K-quant SIMD kernel files (dot_kquant_*_avx2.cpp,
// dot_kquant_*_avx512.cpp): the tile driver they share and the installers of
// the split-off files.
//
// Everything defined here sits in an anonymous namespace, so each SIMD file
// gets its own copy compiled with its own instruction set (kernel_set.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/kernel_set.h"

namespace frugal {

// Q2_K and Q3_K (dot_kquant_low_avx2.cpp / dot_kquant_low_avx512.cpp).
void install_kquant_low_avx2(KernelSet& set);
void install_kquant_low_avx512(KernelSet& set);

namespace {

// Byte offsets inside a Q8_K block (block_layouts.h): float d, int8 qs[256],
// int16 bsums[16].
constexpr size_t kQ8KBytes = 292;
constexpr size_t kQ8KQs = 4;
constexpr size_t kQ8KBsums = 260;
constexpr size_t kSuperBlock = 256;

// Walks a rows x tokens tile: tokens in groups of F::kTokens (activations of
// a group stay in L1 while every row passes over them), one weight row at a
// time; the last group calls the kernel instantiated for its size.
// F::run<T>(row, activations, activation_stride, blocks, out, out_stride)
// writes out[t * out_stride] for t < T.
template <class F>
void kquant_tile(const uint8_t* weights, size_t weight_stride, const uint8_t* activations, size_t activation_stride,
                 size_t n, size_t rows, size_t tokens, float* out, size_t out_stride) {
  constexpr size_t kGroup = F::kTokens;
  static_assert(kGroup >= 1 && kGroup <= 8);
  const size_t blocks = n / kSuperBlock;
  size_t t0 = 0;
  for (; t0 + kGroup <= tokens; t0 += kGroup) {
    for (size_t r = 0; r < rows; ++r) {
      F::template run<kGroup>(weights + r * weight_stride, activations + t0 * activation_stride, activation_stride,
                              blocks, out + t0 * out_stride + r, out_stride);
    }
  }
  const size_t left = tokens - t0;
  if (left == 0) return;
  for (size_t r = 0; r < rows; ++r) {
    const uint8_t* w = weights + r * weight_stride;
    const uint8_t* a = activations + t0 * activation_stride;
    float* o = out + t0 * out_stride + r;
    switch (left) {
      case 1: F::template run<1>(w, a, activation_stride, blocks, o, out_stride); break;
      case 2: F::template run<2 < kGroup ? 2 : 1>(w, a, activation_stride, blocks, o, out_stride); break;
      case 3: F::template run<3 < kGroup ? 3 : 1>(w, a, activation_stride, blocks, o, out_stride); break;
      case 4: F::template run<4 < kGroup ? 4 : 1>(w, a, activation_stride, blocks, o, out_stride); break;
      case 5: F::template run<5 < kGroup ? 5 : 1>(w, a, activation_stride, blocks, o, out_stride); break;
      case 6: F::template run<6 < kGroup ? 6 : 1>(w, a, activation_stride, blocks, o, out_stride); break;
      case 7: F::template run<7 < kGroup ? 7 : 1>(w, a, activation_stride, blocks, o, out_stride); break;
      default: break;  // kGroup <= 8
    }
  }
}

}  // namespace
}  // namespace frugal
