// Where tests find ../shared, the source tree and the frugal binary.
#pragma once

#include <filesystem>
#include <string>

namespace frugal::test {

std::filesystem::path shared_dir();
std::filesystem::path shared_path(const std::string& relative);
std::filesystem::path frugal_binary();
// A file of this source tree (models/, examples/, tests/...).
std::filesystem::path source_path(const std::string& relative);
// A fresh, empty directory under the system temp dir, unique per call.
std::filesystem::path scratch_dir(const std::string& tag);

}  // namespace frugal::test
