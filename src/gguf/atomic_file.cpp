#include "frugal/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "frugal/error.h"

namespace frugal {

void write_file_atomically(const std::filesystem::path& path, const std::function<void(const AtomicFileSink&)>& produce) {
  // A unique temporary name in the target directory, so the final rename is
  // atomic and concurrent writers never share a temporary file.
  std::string temp = path.string() + ".tmp-XXXXXX";
  const int fd = ::mkstemp(temp.data());
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
  if (::fchmod(fd, 0644) != 0 || ::fsync(fd) != 0) {
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
