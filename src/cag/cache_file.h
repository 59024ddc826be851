// The `.fkv` knowledge cache file (docs/knowledge-cache.md): a fixed header,
// a JSON manifest (prompt layout, documents, model summary), the token ids,
// page-aligned key and value blocks per layer, and an XXH3-64 checksum of
// everything before it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "frugal/model.h"

namespace frugal::cag {

inline constexpr char kMagic[8] = {'F', 'R', 'U', 'G', 'A', 'L', 'K', 'V'};
// Version 2 added the quantized KV types (codes 2-4) and keys and values in
// different types (the value block's size at offset 104). Files of one
// type, F32 or F16, are still written as version 1.
inline constexpr uint32_t kVersion = 2;
inline constexpr uint32_t kHeaderBytes = 128;
inline constexpr uint64_t kBlockAlignment = 4096;  // KV blocks start on page boundaries, for mmap

struct CacheFileHeader {
  uint32_t version = kVersion;
  uint64_t model_fingerprint = 0;
  uint64_t tokenizer_fingerprint = 0;
  KvTypes precision = KvPrecision::F32;
  uint32_t layer_count = 0;
  uint32_t kv_head_count = 0;
  uint32_t head_size = 0;
  uint64_t token_count = 0;
  // Filled in by the writer / checked by the reader:
  uint64_t manifest_offset = 0;
  uint64_t manifest_bytes = 0;
  uint64_t tokens_offset = 0;
  uint64_t kv_offset = 0;
  uint64_t kv_block_bytes = 0;     // one layer's keys, padded to kBlockAlignment
  uint64_t value_block_bytes = 0;  // one layer's values, likewise
  uint64_t checksum_offset = 0;

  uint64_t key_row_bytes() const;
  uint64_t value_row_bytes() const;
  uint64_t key_offset(uint32_t layer) const { return kv_offset + layer * (kv_block_bytes + value_block_bytes); }
  uint64_t value_offset(uint32_t layer) const { return key_offset(layer) + kv_block_bytes; }
};

// Writes the file atomically; keys and values come from the first
// token_count positions of `cache`. FRUGAL_TEST_WRITE_PAUSE_MS (tests only)
// pauses between blocks so a test can kill the writer mid-file.
void write_cache_file(const std::filesystem::path& path, CacheFileHeader header, const nlohmann::json& manifest,
                      std::span<const TokenId> tokens, const KvCache& cache);

// An open cache file: header, manifest and tokens read, structure checked.
struct CacheFile {
  int fd = -1;
  CacheFileHeader header;
  nlohmann::json manifest;
  std::vector<TokenId> tokens;

  CacheFile() = default;
  CacheFile(CacheFile&& other) noexcept;
  CacheFile& operator=(CacheFile&&) = delete;
  CacheFile(const CacheFile&) = delete;
  ~CacheFile();
};

// Opens and checks magic, version, sizes and offsets against the file size,
// and the checksum when `verify_checksum`. Throws FormatError saying what is
// wrong and what to do.
CacheFile open_cache_file(const std::filesystem::path& path, bool verify_checksum);

}  // namespace frugal::cag
