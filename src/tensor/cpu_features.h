// Which instruction-set level the kernels use, chosen at run time.
#pragma once

#include <string_view>

namespace frugal {

enum class Isa {
  Scalar,  // portable C++, any CPU
  Avx2,    // AVX2 + FMA + F16C (x86-64-v3)
  Avx512,  // AVX-512 F/BW/VL/DQ + VNNI (+ BF16 where present)
};

std::string_view isa_name(Isa isa);
// The best level this CPU supports.
Isa detect_isa();
// detect_isa(), lowered by the environment variable FRUGAL_ISA=scalar|avx2|avx512
// (for tests and comparisons; a level the CPU lacks is never chosen).
Isa selected_isa();
bool cpu_supports(Isa isa);

}  // namespace frugal
