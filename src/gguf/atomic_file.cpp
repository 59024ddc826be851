#include "frugal/atomic_file.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>

#include <fmt/format.h>

#include "frugal/error.h"

namespace frugal {

namespace fs = std::filesystem;

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

// ---- Removing temporary files when SIGINT or SIGTERM ends the process ----
// A signal handler may only make async-signal-safe calls, so the names it
// unlinks live in fixed buffers published through lock-free flags.

static_assert(std::atomic<bool>::is_always_lock_free);

struct TemporarySlot {
  std::atomic<bool> claimed{false};  // a writer owns the slot
  std::atomic<bool> ready{false};    // `path` holds a file the handler may unlink
  char path[PATH_MAX]{};
};

// More writes at once than slots are still written, only not cleaned up.
constexpr size_t kTemporarySlots = 32;
TemporarySlot temporary_slots[kTemporarySlots];

constexpr int kCleanupSignals[] = {SIGINT, SIGTERM};

std::mutex handlers_mutex;
int writes_in_progress = 0;                                    // guarded by handlers_mutex
bool handler_installed[std::size(kCleanupSignals)] = {};       // guarded by handlers_mutex

extern "C" void remove_temporaries_then_die(int signal_number) {
  for (auto& slot : temporary_slots) {
    if (slot.ready.load(std::memory_order_acquire)) ::unlink(slot.path);
  }
  // Die of the same signal, so the parent sees "killed by SIGINT" as without
  // this handler: the re-raised signal is delivered when the handler returns.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  ::sigaction(signal_number, &default_action, nullptr);
  ::raise(signal_number);
}

// Installs the handler for the first write in progress, only over the
// default disposition: a program with its own handlers (the server) or one
// that ignores the signal keeps its choice.
void begin_write() {
  std::lock_guard lock(handlers_mutex);
  if (writes_in_progress++ > 0) return;
  for (size_t i = 0; i < std::size(kCleanupSignals); ++i) {
    struct sigaction current {};
    if (::sigaction(kCleanupSignals[i], nullptr, &current) != 0) continue;
    if ((current.sa_flags & SA_SIGINFO) != 0 || current.sa_handler != SIG_DFL) continue;
    struct sigaction ours {};
    ours.sa_handler = remove_temporaries_then_die;
    sigemptyset(&ours.sa_mask);
    for (int other : kCleanupSignals) sigaddset(&ours.sa_mask, other);
    handler_installed[i] = ::sigaction(kCleanupSignals[i], &ours, nullptr) == 0;
  }
}

// Restores the default disposition when the last write ends (unless someone
// installed another handler meanwhile).
void end_write() {
  std::lock_guard lock(handlers_mutex);
  if (--writes_in_progress > 0) return;
  for (size_t i = 0; i < std::size(kCleanupSignals); ++i) {
    if (!handler_installed[i]) continue;
    handler_installed[i] = false;
    struct sigaction current {};
    if (::sigaction(kCleanupSignals[i], nullptr, &current) != 0) continue;
    if ((current.sa_flags & SA_SIGINFO) != 0 || current.sa_handler != remove_temporaries_then_die) continue;
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    sigemptyset(&default_action.sa_mask);
    ::sigaction(kCleanupSignals[i], &default_action, nullptr);
  }
}

// One write in progress: the signal handlers, and the temporary file they
// remove while it exists.
class WriteInProgress {
 public:
  WriteInProgress() { begin_write(); }
  ~WriteInProgress() {
    forget_temporary();
    end_write();
  }
  WriteInProgress(const WriteInProgress&) = delete;
  WriteInProgress& operator=(const WriteInProgress&) = delete;

  void track_temporary(const std::string& path) {
    // Absolute, so a change of working directory cannot misdirect the unlink.
    std::error_code error;
    const std::string absolute = fs::absolute(path, error).string();
    if (error || absolute.size() >= PATH_MAX) return;
    for (auto& candidate : temporary_slots) {
      bool expected = false;
      if (!candidate.claimed.compare_exchange_strong(expected, true)) continue;
      std::memcpy(candidate.path, absolute.c_str(), absolute.size() + 1);
      candidate.ready.store(true, std::memory_order_release);
      slot_ = &candidate;
      return;
    }
  }

  void forget_temporary() {
    if (!slot_) return;
    slot_->ready.store(false, std::memory_order_release);
    slot_->claimed.store(false, std::memory_order_release);
    slot_ = nullptr;
  }

 private:
  TemporarySlot* slot_ = nullptr;
};

// ---- What the output path is ----

// The file a write to `path` replaces: `path` itself or, for a symbolic
// link, the file the chain of links ends at (which may not exist yet).
fs::path resolve_links(const fs::path& path) {
  fs::path current = path;
  for (int hops = 0; hops < 40; ++hops) {
    struct stat info {};
    if (::lstat(current.c_str(), &info) != 0 || !S_ISLNK(info.st_mode)) return current;
    std::error_code error;
    const fs::path target = fs::read_symlink(current, error);
    if (error) throw Error(fmt::format("{}: cannot read the symbolic link: {}", current.string(), error.message()));
    current = target.is_absolute() ? target : current.parent_path() / target;
  }
  throw Error(fmt::format("{}: too many levels of symbolic links; give a file path", path.string()));
}

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

// Refuses outputs that a rename would wrongly replace (a device, a FIFO, a
// folder) and returns the file to replace.
fs::path checked_target(const fs::path& path) {
  const fs::path target = resolve_links(path);
  const std::string name =
      target == path ? path.string() : fmt::format("{} (a link to {})", path.string(), target.string());
  struct stat info {};
  if (::stat(target.c_str(), &info) == 0 && !S_ISREG(info.st_mode)) {
    throw Error(fmt::format("{} is not a regular file ({}); give a file path", name, file_kind(info.st_mode)));
  }
  if (!target.has_filename()) throw Error(fmt::format("{} names a folder; give a file path", name));
  return target;
}

fs::path folder_of(const fs::path& file) { return file.has_parent_path() ? file.parent_path() : fs::path("."); }

}  // namespace

void check_output_file(const fs::path& path) {
  const fs::path target = checked_target(path);
  const fs::path folder = folder_of(target);
  struct stat info {};
  if (::stat(folder.c_str(), &info) != 0) {
    throw Error(fmt::format("{}: the folder {} does not exist; create it first or give another path", path.string(),
                            folder.string()));
  }
  if (!S_ISDIR(info.st_mode)) {
    throw Error(fmt::format("{}: {} is not a folder; give another path", path.string(), folder.string()));
  }
  if (::access(folder.c_str(), W_OK | X_OK) != 0) {
    throw Error(fmt::format("{}: cannot write in the folder {}: {}; give another path", path.string(),
                            folder.string(), std::strerror(errno)));
  }
}

void write_file_atomically(const fs::path& path, const std::function<void(const AtomicFileSink&)>& produce) {
  // A link is written through: its target is replaced, the link stays.
  const fs::path target = checked_target(path);
  WriteInProgress in_progress;
  // A unique temporary name in the target directory, so the final rename is
  // atomic and concurrent writers never share a temporary file.
  std::string temp = target.string() + ".tmp-XXXXXX";
  const int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) throw Error(fmt::format("{}: cannot create a file next to it: {}", path.string(), std::strerror(errno)));
  in_progress.track_temporary(temp);
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
  const mode_t mode = ::stat(target.c_str(), &existing) == 0 ? (existing.st_mode & 07777) : (0666 & ~current_umask());
  if (::fchmod(fd, mode) != 0 || ::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail("cannot flush to disk", err);
  }
  if (::close(fd) != 0) fail("cannot close", errno);
  if (::rename(temp.c_str(), target.c_str()) != 0) fail("cannot move the new file into place", errno);
  in_progress.forget_temporary();
  // Make the rename itself durable.
  const int dir_fd = ::open(folder_of(target).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace frugal
