// Installers of the SIMD kernel files for the plain formats (F32/F16/BF16),
// called from install_legacy_avx2 / install_legacy_avx512. Internal to
// src/tensor.
#pragma once

namespace frugal {

struct KernelSet;

void install_plain_avx2(KernelSet& set);    // dot_plain_avx2.cpp: F32/F16/BF16 dot tiles
void install_plain_avx512(KernelSet& set);  // dot_plain_avx512.cpp

}  // namespace frugal
