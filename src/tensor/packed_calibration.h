// Whether repacking a format pays on this CPU, decided by timing rather than
// by CPU flags: the same kernel design wins on one micro-architecture and
// loses on another (Zen 4 runs AVX-512 as two halves; cross-lane permutes
// cost differently), and new CPUs keep coming.
#pragma once

#include "frugal/tensor_type.h"

namespace frugal {

// True when the active kernels decode a repacked matrix of `type` faster
// than the stored one. Times one-token products of both layouts over the
// same cache-resident matrix (a few milliseconds, alternating to share
// any frequency change); the answer is kept for the process. False for
// formats without a repacked kernel on this CPU.
bool repacking_pays(TensorType type);

// True when the active kernels can multiply `type` repacked at all.
bool repacking_available(TensorType type);

}  // namespace frugal
