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
//
// A symbolic link is written through: the link's final target is replaced
// and the link stays a link. A path that exists and is not a regular file
// (a directory, FIFO, device, socket) is refused before `produce` runs.
//
// While a write is in progress, SIGINT and SIGTERM whose disposition is the
// default remove the temporary file before the process dies of the signal
// (a program that handles these signals itself keeps its handlers).
// SIGKILL or a power cut can still leave a `NAME.tmp-XXXXXX`, safe to delete.
void write_file_atomically(const std::filesystem::path& path, const std::function<void(const AtomicFileSink&)>& produce);

// Throws Error unless write_file_atomically(path, ...) can work, checked
// before any expensive work: the folder exists and is writable, and `path`
// is absent, a regular file or a link to one.
void check_output_file(const std::filesystem::path& path);

}  // namespace frugal
