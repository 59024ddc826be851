// avx512 kernels for the kquant formats (see kernel_set.h for the rules).
// GCC 12's AVX-512 headers trip -Wuninitialized inside their own intrinsics.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include "tensor/kernel_set.h"

namespace frugal {

void install_kquant_avx512(KernelSet& /*set*/) {}

}  // namespace frugal
