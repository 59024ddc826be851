// Crash-safe file replacement: the content is written to a temporary file in
// the target's folder, flushed to disk, then renamed over the target, so the
// target is always either its old content or the complete new one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>

namespace frugal {

using AtomicFileSink = std::function<void(std::span<const uint8_t>)>;

// Calls `produce` with a sink that appends to the temporary file. If
// `produce` or a write throws, the temporary file is removed and the
// exception propagates; the target is untouched. Throws Error naming the
// path and the system error.
void write_file_atomically(const std::filesystem::path& path, const std::function<void(const AtomicFileSink&)>& produce);

}  // namespace frugal
