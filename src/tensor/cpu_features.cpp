#include "tensor/cpu_features.h"

#include <cstdlib>
#include <string>

#include "frugal/error.h"

namespace frugal {

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "unknown";
}

bool cpu_supports(Isa isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c") && __builtin_cpu_supports("bmi2");
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return avx2;
    case Isa::Avx512:
      return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vnni");
  }
  return false;
#else
  return isa == Isa::Scalar;
#endif
}

Isa detect_isa() {
  if (cpu_supports(Isa::Avx512)) return Isa::Avx512;
  if (cpu_supports(Isa::Avx2)) return Isa::Avx2;
  return Isa::Scalar;
}

Isa selected_isa() {
  const Isa best = detect_isa();
  const char* requested = std::getenv("FRUGAL_ISA");
  if (!requested || !*requested) return best;
  const std::string name(requested);
  Isa wanted;
  if (name == "scalar") {
    wanted = Isa::Scalar;
  } else if (name == "avx2") {
    wanted = Isa::Avx2;
  } else if (name == "avx512") {
    wanted = Isa::Avx512;
  } else {
    throw Error("FRUGAL_ISA='" + name + "' is not one of scalar, avx2, avx512");
  }
  return static_cast<int>(wanted) < static_cast<int>(best) ? wanted : best;
}

}  // namespace frugal
