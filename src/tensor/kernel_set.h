// The table of compute kernels for one instruction-set level. Every entry is
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

namespace frugal {

// out[t * out_stride + r] = dot(weight row r, activation row t) for r < rows,
// t < tokens. Rows are `n` elements; weight rows are `weight_stride` bytes
// apart, activation rows `activation_stride` bytes apart, activations already
// in the format the weight type pairs with (frugal/quant.h).
using DotTileFn = void (*)(const uint8_t* weights, size_t weight_stride, const uint8_t* activations,
                           size_t activation_stride, size_t n, size_t rows, size_t tokens, float* out,
                           size_t out_stride);
// Converts n F32 values to an activation format (bit-identical across levels).
using QuantizeActivationFn = void (*)(const float* x, void* out, size_t n);

inline constexpr size_t kTensorTypeSlots = 32;

struct KernelSet {
  Isa isa = Isa::Scalar;
  DotTileFn dot_tile[kTensorTypeSlots] = {};                         // by weight type id
  QuantizeActivationFn quantize_activation[kTensorTypeSlots] = {};  // by activation type id
  float (*dot_f32)(const float* a, const float* b, size_t n) = nullptr;
  void (*axpy_f32)(float alpha, const float* x, float* y, size_t n) = nullptr;  // y += alpha * x
};

// The table of a level (the CPU must support it).
const KernelSet& kernel_set(Isa isa);
// The table of selected_isa(), chosen once.
const KernelSet& active_kernels();

// Filled by the level files; each starts from a copy of the scalar table.
void install_scalar_kernels(KernelSet& set);
void install_avx2_kernels(KernelSet& set);
void install_avx512_kernels(KernelSet& set);

inline size_t type_slot(TensorType type) { return static_cast<size_t>(type) % kTensorTypeSlots; }

}  // namespace frugal
