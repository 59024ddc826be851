#include "tensor/kernel_set.h"

#include "frugal/error.h"

namespace frugal {

namespace {

KernelSet build(Isa isa) {
  KernelSet set;
  install_scalar_kernels(set);
#if defined(__x86_64__)
  if (isa == Isa::Avx2 || isa == Isa::Avx512) install_avx2_kernels(set);
  if (isa == Isa::Avx512) install_avx512_kernels(set);
#endif
  set.isa = isa;
  return set;
}

}  // namespace

const KernelSet& kernel_set(Isa isa) {
  if (!cpu_supports(isa)) {
    throw UnsupportedError(std::string("this CPU does not support ") + std::string(isa_name(isa)) + " kernels");
  }
  static const KernelSet scalar = build(Isa::Scalar);
  if (isa == Isa::Scalar) return scalar;
  static const KernelSet avx2 = build(Isa::Avx2);
  if (isa == Isa::Avx2) return avx2;
  static const KernelSet avx512 = build(Isa::Avx512);
  return avx512;
}

const KernelSet& active_kernels() {
  static const KernelSet& active = kernel_set(selected_isa());
  return active;
}

}  // namespace frugal
