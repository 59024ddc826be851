#include "support/test_paths.h"

#include <atomic>
#include <cstdlib>
#include <unistd.h>

namespace frugal::test {

std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("FRUGAL_SHARED_DIR")) return env;
  return FRUGAL_SHARED_DIR;
}

std::filesystem::path shared_path(const std::string& relative) { return shared_dir() / relative; }

std::filesystem::path frugal_binary() { return FRUGAL_BINARY; }

std::filesystem::path source_path(const std::string& relative) {
  return std::filesystem::path(FRUGAL_SOURCE_DIR) / relative;
}

std::filesystem::path scratch_dir(const std::string& tag) {
  static std::atomic<int> counter{0};
  auto dir = std::filesystem::temp_directory_path() /
             ("frugal-test-" + tag + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace frugal::test
