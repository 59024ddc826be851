// libFuzzer entry point: any byte string must either parse or raise
// frugal::Error, never crash or read out of bounds.
#include <cstddef>
#include <cstdint>

#include "frugal/error.h"
#include "frugal/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    frugal::GgufLimits limits;
    limits.max_array_items = 1 << 16;
    limits.max_string_bytes = 1 << 16;
    auto file = frugal::GgufFile::parse({data, size}, "fuzz", limits);
    for (const auto& t : file.tensors()) {
      volatile uint8_t sink = 0;
      if (t.size_bytes) sink = t.data[t.size_bytes - 1];  // must be in bounds
      (void)sink;
    }
    for (const auto& [key, value] : file.metadata()) (void)value.to_display_string();
  } catch (const frugal::Error&) {
  }
  return 0;
}
