// The web page's files (web/), compiled into the binary by
// cmake/embed_files.cmake, so `frugal serve` needs nothing beside itself.
#pragma once

#include <cstddef>
#include <span>

namespace frugal::server {

struct WebAsset {
  const char* path;          // "/index.html"
  const char* content_type;
  const unsigned char* data;
  size_t size;
};

std::span<const WebAsset> web_assets();

}  // namespace frugal::server
