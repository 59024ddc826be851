// avx2 kernels for the kquant formats (see kernel_set.h for the rules).
#include <immintrin.h>

#include "tensor/kernel_set.h"

namespace frugal {

void install_kquant_avx2(KernelSet& /*set*/) {}

}  // namespace frugal
