// The generation options tests compare answers with: greedy (temperature
// 0), so an answer depends on the logits alone.
#pragma once

#include <cstdint>

#include "frugal/generate.h"

namespace frugal::test {

inline GenerationOptions greedy(int32_t max_tokens = 16) {
  GenerationOptions options;
  options.max_tokens = max_tokens;
  options.sampling.temperature = 0;
  return options;
}

}  // namespace frugal::test
