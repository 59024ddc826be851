#include "frugal/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "frugal/error.h"

namespace frugal {

namespace {

// The process umask without changing it (umask(2) can only set it, which
// would race with other threads creating files).
mode_t current_umask() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Umask:", 0) == 0) return static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8));
  }
  return 022;
}

}  // namespace

void write_file_atomically(const std::filesystem::path& path, const std::function<void(const AtomicFileSink&)>& produce) {
  // A unique temporary name in the target directory, so the final rename is
  // atomic and concurrent writers never share a temporary file.
  std::string temp = path.string() + ".tmp-XXXXXX";
  const int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) throw Error(fmt::format("{}: cannot create a file next to it: {}", path.string(), std::strerror(errno)));
  auto fail = [&](const char* what, int err) {
    ::unlink(temp.c_str());
    throw Error(fmt::format("{}: {}: {}", path.string(), what, std::strerror(err)));
  };
  auto write_all = [&](std::span<const uint8_t> bytes) {
    size_t written = 0;
    while (written < bytes.size()) {
      const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw Error(fmt::format("{}: write failed: {}", path.string(), std::strerror(errno)));
      }
      written += static_cast<size_t>(n);
    }
  };
  try {
    produce(write_all);
  } catch (...) {
    // A failed write or source leaves no partial file behind.
    ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  // A replaced file keeps its permissions; a new one gets the usual
  // 0666 & ~umask (mkstemp's 0600 would hide it from other users).
  struct stat existing {};
  const mode_t mode = ::stat(path.c_str(), &existing) == 0 ? (existing.st_mode & 07777) : (0666 & ~current_umask());
  if (::fchmod(fd, mode) != 0 || ::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail("cannot flush to disk", err);
  }
  if (::close(fd) != 0) fail("cannot close", errno);
  if (::rename(temp.c_str(), path.c_str()) != 0) fail("cannot move the new file into place", errno);
  // Make the rename itself durable.
  const std::string directory = path.has_parent_path() ? path.parent_path().string() : ".";
  const int dir_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace frugal
