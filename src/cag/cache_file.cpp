#include "cag/cache_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <xxhash.h>

#include "frugal/atomic_file.h"
#include "frugal/error.h"

namespace frugal::cag {

static_assert(std::endian::native == std::endian::little, "the .fkv format is little-endian");

namespace {

// The KV type's code at offset 32, by position (version 1 knew the first two).
constexpr std::array<KvPrecision, 5> kKvTypeCodes{KvPrecision::F32, KvPrecision::F16, KvPrecision::Q8_0,
                                                  KvPrecision::Q4_0, KvPrecision::Q4_H};

uint32_t kv_type_code(KvPrecision precision) {
  return static_cast<uint32_t>(std::find(kKvTypeCodes.begin(), kKvTypeCodes.end(), precision) - kKvTypeCodes.begin());
}

uint64_t align_up(uint64_t value, uint64_t alignment) { return (value + alignment - 1) / alignment * alignment; }

template <typename T>
void put(uint8_t* header, size_t offset, T value) {
  std::memcpy(header + offset, &value, sizeof value);
}

template <typename T>
T get(const uint8_t* header, size_t offset) {
  T value;
  std::memcpy(&value, header + offset, sizeof value);
  return value;
}

void encode_header(const CacheFileHeader& h, uint8_t* out) {
  std::memset(out, 0, kHeaderBytes);
  std::memcpy(out, kMagic, sizeof kMagic);
  put<uint32_t>(out, 8, h.version);
  put<uint32_t>(out, 12, kHeaderBytes);
  put<uint64_t>(out, 16, h.model_fingerprint);
  put<uint64_t>(out, 24, h.tokenizer_fingerprint);
  // Version 1: one code; version 2: keys' type in the low byte, values' in
  // the next.
  put<uint32_t>(out, 32, h.version == 1 ? kv_type_code(h.precision.keys)
                                        : kv_type_code(h.precision.keys) | (kv_type_code(h.precision.values) << 8));
  put<uint32_t>(out, 36, h.layer_count);
  put<uint32_t>(out, 40, h.kv_head_count);
  put<uint32_t>(out, 44, h.head_size);
  put<uint64_t>(out, 48, h.token_count);
  put<uint64_t>(out, 56, h.manifest_offset);
  put<uint64_t>(out, 64, h.manifest_bytes);
  put<uint64_t>(out, 72, h.tokens_offset);
  put<uint64_t>(out, 80, h.kv_offset);
  put<uint64_t>(out, 88, h.kv_block_bytes);
  put<uint64_t>(out, 96, h.checksum_offset);
  if (h.version >= 2) put<uint64_t>(out, 104, h.value_block_bytes);
}

// Offsets of every section, from the counts alone: the writer lays the file
// out with it and the reader checks the stored offsets against it.
void lay_out(CacheFileHeader& h) {
  h.manifest_offset = kHeaderBytes;
  h.tokens_offset = align_up(h.manifest_offset + h.manifest_bytes, 8);
  h.kv_offset = align_up(h.tokens_offset + h.token_count * sizeof(TokenId), kBlockAlignment);
  h.kv_block_bytes = align_up(h.token_count * h.key_row_bytes(), kBlockAlignment);
  h.value_block_bytes = align_up(h.token_count * h.value_row_bytes(), kBlockAlignment);
  h.checksum_offset = h.kv_offset + uint64_t{h.layer_count} * (h.kv_block_bytes + h.value_block_bytes);
}

void read_exactly(int fd, void* out, size_t bytes, uint64_t offset, const std::string& name) {
  auto* p = static_cast<uint8_t*>(out);
  while (bytes > 0) {
    const ssize_t got = ::pread(fd, p, bytes, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) throw FormatError(fmt::format("{}: cannot read {} bytes at offset {}", name, bytes, offset));
    p += got;
    bytes -= static_cast<size_t>(got);
    offset += static_cast<uint64_t>(got);
  }
}

uint64_t checksum_of(int fd, uint64_t bytes, const std::string& name) {
  if (bytes == 0) return XXH3_64bits(nullptr, 0);
  void* mapped = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
  if (mapped == MAP_FAILED) throw FormatError(fmt::format("{}: cannot map the file: {}", name, std::strerror(errno)));
  ::madvise(mapped, bytes, MADV_SEQUENTIAL);
  const uint64_t hash = XXH3_64bits(mapped, bytes);
  ::munmap(mapped, bytes);
  return hash;
}

}  // namespace

uint64_t CacheFileHeader::key_row_bytes() const {
  return kv_bytes(precision.keys, uint64_t{kv_head_count} * head_size);
}

uint64_t CacheFileHeader::value_row_bytes() const {
  return kv_bytes(precision.values, uint64_t{kv_head_count} * head_size);
}

void write_cache_file(const std::filesystem::path& path, CacheFileHeader header, const nlohmann::json& manifest,
                      std::span<const TokenId> tokens, const KvCache& cache) {
  const std::string manifest_text = manifest.dump(1);
  // Files that version 1 can describe (one type, F32 or F16) are written as
  // version 1, so older builds still read them.
  const KvTypes types = header.precision;
  header.version = types.same() && (types.keys == KvPrecision::F32 || types.keys == KvPrecision::F16) ? 1 : kVersion;
  header.manifest_bytes = manifest_text.size();
  header.token_count = tokens.size();
  lay_out(header);
  if (cache.size() < static_cast<int64_t>(tokens.size()) || cache.key_row_bytes() != header.key_row_bytes() ||
      cache.value_row_bytes() != header.value_row_bytes() ||
      cache.layer_count() != static_cast<int64_t>(header.layer_count)) {
    throw Error("internal error: the KV cache does not match the knowledge cache header");
  }
  const char* pause_env = std::getenv("FRUGAL_TEST_WRITE_PAUSE_MS");
  const int pause_ms = pause_env ? std::atoi(pause_env) : 0;

  write_file_atomically(path, [&](const AtomicFileSink& sink) {
    XXH3_state_t* state = XXH3_createState();
    if (state == nullptr) throw std::bad_alloc();
    XXH3_64bits_reset(state);
    uint64_t written = 0;
    auto out = [&](const void* data, size_t size) {
      const std::span bytes(static_cast<const uint8_t*>(data), size);
      XXH3_64bits_update(state, bytes.data(), bytes.size());
      sink(bytes);
      written += size;
    };
    const std::vector<uint8_t> zeros(kBlockAlignment, 0);
    auto pad_to = [&](uint64_t offset) {
      while (written < offset) out(zeros.data(), static_cast<size_t>(std::min<uint64_t>(offset - written, zeros.size())));
    };
    try {
      uint8_t encoded[kHeaderBytes];
      encode_header(header, encoded);
      out(encoded, sizeof encoded);
      out(manifest_text.data(), manifest_text.size());
      pad_to(header.tokens_offset);
      out(tokens.data(), tokens.size_bytes());
      pad_to(header.kv_offset);
      for (uint32_t layer = 0; layer < header.layer_count; ++layer) {
        if (pause_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
        out(cache.key_row(layer, 0), static_cast<size_t>(header.token_count * header.key_row_bytes()));
        pad_to(header.value_offset(layer));
        if (pause_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
        out(cache.value_row(layer, 0), static_cast<size_t>(header.token_count * header.value_row_bytes()));
        pad_to(header.value_offset(layer) + header.value_block_bytes);
      }
      const uint64_t checksum = XXH3_64bits_digest(state);
      sink(std::span(reinterpret_cast<const uint8_t*>(&checksum), sizeof checksum));
    } catch (...) {
      XXH3_freeState(state);
      throw;
    }
    XXH3_freeState(state);
  });
}

CacheFile::CacheFile(CacheFile&& other) noexcept
    : fd(std::exchange(other.fd, -1)),
      header(other.header),
      manifest(std::move(other.manifest)),
      tokens(std::move(other.tokens)) {}

CacheFile::~CacheFile() {
  if (fd >= 0) ::close(fd);
}

CacheFile open_cache_file(const std::filesystem::path& path, bool verify_checksum) {
  const std::string name = path.string();
  CacheFile file;
  file.fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (file.fd < 0) throw Error(fmt::format("{}: cannot open the knowledge cache: {}", name, std::strerror(errno)));
  struct stat info {};
  if (::fstat(file.fd, &info) != 0) throw Error(fmt::format("{}: cannot read: {}", name, std::strerror(errno)));
  const uint64_t file_size = static_cast<uint64_t>(info.st_size);
  if (file_size < kHeaderBytes) {
    throw FormatError(fmt::format("{}: {} bytes is too short for a knowledge cache (the header alone is {}); the "
                                  "file is truncated or not a .fkv file", name, file_size, kHeaderBytes));
  }
  uint8_t raw[kHeaderBytes];
  read_exactly(file.fd, raw, kHeaderBytes, 0, name);
  if (std::memcmp(raw, kMagic, sizeof kMagic) != 0) {
    throw FormatError(fmt::format("{}: not a frugal knowledge cache (no FRUGALKV magic at offset 0); build one with "
                                  "`frugal kb build`", name));
  }
  CacheFileHeader& h = file.header;
  h.version = get<uint32_t>(raw, 8);
  if (h.version > kVersion) {
    throw FormatError(fmt::format("{}: format version {} was written by a newer frugal; this build reads version {} "
                                  "and older. Upgrade frugal or rebuild the cache with `frugal kb build`",
                                  name, h.version, kVersion));
  }
  if (h.version == 0) throw FormatError(fmt::format("{}: format version 0 does not exist; the file is corrupt", name));
  auto corrupt = [&](const std::string& what) {
    return FormatError(fmt::format("{}: the file is corrupt: {}; rebuild it with `frugal kb build`", name, what));
  };
  if (get<uint32_t>(raw, 12) != kHeaderBytes) {
    throw corrupt(fmt::format("header size {} at offset 12, expected {}", get<uint32_t>(raw, 12), kHeaderBytes));
  }
  h.model_fingerprint = get<uint64_t>(raw, 16);
  h.tokenizer_fingerprint = get<uint64_t>(raw, 24);
  const uint32_t precision = get<uint32_t>(raw, 32);
  const uint32_t known_types = h.version == 1 ? 2 : static_cast<uint32_t>(kKvTypeCodes.size());
  // Version 1: one type; version 2: keys in the low byte, values next.
  const uint32_t key_code = h.version == 1 ? precision : precision & 0xFF;
  const uint32_t value_code = h.version == 1 ? precision : precision >> 8;
  if (key_code >= known_types || value_code >= known_types) {
    throw corrupt(fmt::format("KV type {} at offset 32 (version {} knows 0 to {})", precision, h.version,
                              known_types - 1));
  }
  h.precision = KvTypes(kKvTypeCodes[key_code], kKvTypeCodes[value_code]);
  h.layer_count = get<uint32_t>(raw, 36);
  h.kv_head_count = get<uint32_t>(raw, 40);
  h.head_size = get<uint32_t>(raw, 44);
  h.token_count = get<uint64_t>(raw, 48);
  h.manifest_bytes = get<uint64_t>(raw, 64);
  // Plausible dimensions (the layout itself is checked below).
  if (h.layer_count > 4096 || h.kv_head_count > 4096 || h.head_size > 65536 || h.token_count > (uint64_t{1} << 32) ||
      h.manifest_bytes > file_size) {
    throw corrupt(fmt::format("implausible sizes ({} layers, {} KV heads of {}, {} tokens, manifest {} bytes)",
                              h.layer_count, h.kv_head_count, h.head_size, h.token_count, h.manifest_bytes));
  }
  // The whole layout in 128 bits first: huge counts cannot wrap around and
  // pass the offset checks, and nothing is allocated for a file that cannot
  // hold what its header claims.
  {
    using Wide = unsigned __int128;
    const auto align = [](Wide v, Wide a) { return (v + a - 1) / a * a; };
    if (!kv_precision_fits(h.precision.keys, h.head_size) || !kv_precision_fits(h.precision.values, h.head_size)) {
      throw corrupt(fmt::format("{} KV rows with heads of {} values (not whole blocks)",
                                kv_types_name(h.precision), h.head_size));
    }
    const Wide key_row = kv_bytes(h.precision.keys, size_t{h.kv_head_count} * h.head_size);
    const Wide value_row = kv_bytes(h.precision.values, size_t{h.kv_head_count} * h.head_size);
    const Wide tokens_end = align(Wide{kHeaderBytes} + h.manifest_bytes, 8) + Wide{h.token_count} * 4;
    const Wide total = align(tokens_end, kBlockAlignment) +
                       Wide{h.layer_count} * (align(Wide{h.token_count} * key_row, kBlockAlignment) +
                                              align(Wide{h.token_count} * value_row, kBlockAlignment)) +
                       8;
    if (total > file_size) {
      if (total > (Wide{1} << 62)) {
        throw corrupt(fmt::format("its header claims an impossible size ({} tokens, {} layers, {} KV heads of {})",
                                  h.token_count, h.layer_count, h.kv_head_count, h.head_size));
      }
      throw FormatError(fmt::format("{}: the file is truncated: {} bytes, expected {} for {} tokens; it was cut off "
                                    "while being copied or written. Rebuild it with `frugal kb build`",
                                    name, file_size, static_cast<uint64_t>(total), h.token_count));
    }
  }
  CacheFileHeader expected = h;
  lay_out(expected);
  const std::pair<const char*, std::pair<uint64_t, uint64_t>> offsets[] = {
      {"manifest offset", {get<uint64_t>(raw, 56), expected.manifest_offset}},
      {"token offset", {get<uint64_t>(raw, 72), expected.tokens_offset}},
      {"KV offset", {get<uint64_t>(raw, 80), expected.kv_offset}},
      {"KV block size", {get<uint64_t>(raw, 88), expected.kv_block_bytes}},
      {"value block size", {h.version == 1 ? expected.value_block_bytes : get<uint64_t>(raw, 104),
                            expected.value_block_bytes}},
      {"checksum offset", {get<uint64_t>(raw, 96), expected.checksum_offset}},
  };
  for (const auto& [what, values] : offsets) {
    if (values.first != values.second) throw corrupt(fmt::format("{} {}, expected {}", what, values.first, values.second));
  }
  h = expected;
  const uint64_t expected_size = h.checksum_offset + sizeof(uint64_t);
  if (file_size < expected_size) {
    throw FormatError(fmt::format("{}: the file is truncated: {} bytes, expected {} for {} tokens; it was cut off "
                                  "while being copied or written. Rebuild it with `frugal kb build`",
                                  name, file_size, expected_size, h.token_count));
  }
  if (file_size > expected_size) {
    throw corrupt(fmt::format("{} unexpected bytes after the checksum", file_size - expected_size));
  }
  if (verify_checksum) {
    uint64_t stored = 0;
    read_exactly(file.fd, &stored, sizeof stored, h.checksum_offset, name);
    const uint64_t computed = checksum_of(file.fd, h.checksum_offset, name);
    if (stored != computed) {
      throw FormatError(fmt::format("{}: checksum mismatch (stored {:016x}, computed {:016x}): the file is corrupt. "
                                    "Rebuild it with `frugal kb build`", name, stored, computed));
    }
  }
  std::string manifest_text(h.manifest_bytes, '\0');
  read_exactly(file.fd, manifest_text.data(), manifest_text.size(), h.manifest_offset, name);
  try {
    file.manifest = nlohmann::json::parse(manifest_text);
  } catch (const nlohmann::json::exception& e) {
    throw corrupt(fmt::format("the manifest at offset {} is not valid JSON ({})", h.manifest_offset, e.what()));
  }
  file.tokens.resize(h.token_count);
  read_exactly(file.fd, file.tokens.data(), file.tokens.size() * sizeof(TokenId), h.tokens_offset, name);
  return file;
}

}  // namespace frugal::cag
