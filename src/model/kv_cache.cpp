#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <utility>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/model.h"
#include "model/model_impl.h"
#include "frugal/quant.h"

namespace frugal {

namespace {

size_t page_size() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

size_t round_up_to_page(size_t bytes) {
  const size_t page = page_size();
  return (bytes + page - 1) / page * page;
}

// pread until done: a regular file may still return short reads.
void read_exactly(int fd, uint8_t* out, size_t bytes, uint64_t offset) {
  while (bytes > 0) {
    const ssize_t got = ::pread(fd, out, bytes, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      throw Error(fmt::format("cannot read KV rows at file offset {}: {}", offset,
                              got < 0 ? std::strerror(errno) : "the file ends early"));
    }
    out += got;
    bytes -= static_cast<size_t>(got);
    offset += static_cast<uint64_t>(got);
  }
}

}  // namespace

KvCache::Region::Region(size_t bytes) : size_(round_up_to_page(bytes == 0 ? 1 : bytes)) {
  // MAP_NORESERVE: a long context reserves address space, not memory; pages
  // are committed as they are written.
  void* memory = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (memory == MAP_FAILED) throw std::bad_alloc();
  data_ = static_cast<uint8_t*>(memory);
}

KvCache::Region::Region(Region&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

KvCache::Region& KvCache::Region::operator=(Region&& other) noexcept {
  if (this != &other) {
    if (data_) ::munmap(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

KvCache::Region::~Region() {
  if (data_) ::munmap(data_, size_);
}

KvCache::KvCache(const ModelConfig& config, int64_t context_size, KvTypes types)
    : capacity_(context_size),
      row_elements_(config.kv_head_count * config.head_size),
      types_(types) {
  head_size_ = static_cast<size_t>(config.head_size);
  check_kv_types(types, head_size_);
  key_row_bytes_ = kv_bytes(types.keys, static_cast<size_t>(row_elements_));
  value_row_bytes_ = kv_bytes(types.values, static_cast<size_t>(row_elements_));
  constexpr int64_t kMaxContext = int64_t{1} << 26;
  if (context_size <= 0 || context_size > kMaxContext) {
    throw Error(fmt::format("context size must be between 1 and {}, got {}", kMaxContext, context_size));
  }
  // Both factors are bounded (context here, dimensions by ModelConfig), so
  // the product fits; the total is reported before the allocation is tried.
  const size_t key_layer = static_cast<size_t>(capacity_) * key_row_bytes_;
  const size_t value_layer = static_cast<size_t>(capacity_) * value_row_bytes_;
  const double total_gib = static_cast<double>(key_layer + value_layer) * static_cast<double>(config.layer_count) /
                           static_cast<double>(1ull << 30);
  try {
    for (int64_t layer = 0; layer < config.layer_count; ++layer) {
      keys_.emplace_back(key_layer);
      values_.emplace_back(value_layer);
    }
  } catch (const std::bad_alloc&) {
    throw Error(fmt::format("not enough memory for a KV cache of {} tokens ({:.2f} GiB); use a smaller -c or "
                            "--cache-type q8_0", context_size, total_gib));
  }
}

void KvCache::truncate(int64_t position) {
  if (position < 0 || position > size_) {
    throw Error(fmt::format("cannot truncate a KV cache of {} tokens to {}", size_, position));
  }
  size_ = position;
}

size_t KvCache::bytes() const {
  return keys_.size() * static_cast<size_t>(capacity_) * (key_row_bytes_ + value_row_bytes_);
}

KvCache KvCache::clone() const {
  KvCache copy;
  copy.capacity_ = capacity_;
  copy.size_ = size_;
  copy.row_elements_ = row_elements_;
  copy.key_row_bytes_ = key_row_bytes_;
  copy.value_row_bytes_ = value_row_bytes_;
  copy.head_size_ = head_size_;
  copy.types_ = types_;
  const auto capacity = static_cast<size_t>(capacity_), filled = static_cast<size_t>(size_);
  try {
    for (size_t layer = 0; layer < keys_.size(); ++layer) {
      // Only the filled part is copied: the rest stays untouched zero pages.
      copy.keys_.emplace_back(capacity * key_row_bytes_);
      copy.values_.emplace_back(capacity * value_row_bytes_);
      std::memcpy(copy.keys_.back().data(), keys_[layer].data(), filled * key_row_bytes_);
      std::memcpy(copy.values_.back().data(), values_[layer].data(), filled * value_row_bytes_);
    }
  } catch (const std::bad_alloc&) {
    throw Error(fmt::format("not enough memory to copy a KV cache of {} tokens ({} bytes)", capacity_, bytes()));
  }
  return copy;
}

KvCache KvCache::converted(KvTypes types) const {
  if (types == types_) return clone();
  check_kv_types(types, head_size_);
  KvCache copy;
  copy.head_size_ = head_size_;
  copy.capacity_ = capacity_;
  copy.size_ = size_;
  copy.row_elements_ = row_elements_;
  copy.types_ = types;
  copy.key_row_bytes_ = kv_bytes(types.keys, static_cast<size_t>(row_elements_));
  copy.value_row_bytes_ = kv_bytes(types.values, static_cast<size_t>(row_elements_));
  const auto n = static_cast<size_t>(row_elements_);
  try {
    for (size_t layer = 0; layer < keys_.size(); ++layer) {
      copy.keys_.emplace_back(static_cast<size_t>(capacity_) * copy.key_row_bytes_);
      copy.values_.emplace_back(static_cast<size_t>(capacity_) * copy.value_row_bytes_);
      const auto l = static_cast<int64_t>(layer);
      for (int64_t p = 0; p < size_; ++p) {
        convert_kv_row(key_row(l, p), types_.keys, copy.key_row(l, p), types.keys, n);
        convert_kv_row(value_row(l, p), types_.values, copy.value_row(l, p), types.values, n);
      }
    }
  } catch (const std::bad_alloc&) {
    throw Error(fmt::format("not enough memory to convert a KV cache of {} tokens", capacity_));
  }
  return copy;
}

size_t KvCache::filled_bytes() const {
  return keys_.size() * static_cast<size_t>(size_) * (key_row_bytes_ + value_row_bytes_);
}

void* KvCache::key_row(int64_t layer, int64_t position) {
  return keys_[static_cast<size_t>(layer)].data() + static_cast<size_t>(position) * key_row_bytes_;
}

void* KvCache::value_row(int64_t layer, int64_t position) {
  return values_[static_cast<size_t>(layer)].data() + static_cast<size_t>(position) * value_row_bytes_;
}

const void* KvCache::key_row(int64_t layer, int64_t position) const {
  return const_cast<KvCache*>(this)->key_row(layer, position);
}

const void* KvCache::value_row(int64_t layer, int64_t position) const {
  return const_cast<KvCache*>(this)->value_row(layer, position);
}

bool KvCache::map_prefix(int fd, int64_t tokens, std::span<const uint64_t> key_offsets,
                         std::span<const uint64_t> value_offsets) {
  if (tokens < 0 || tokens > capacity_) {
    throw Error(fmt::format("{} stored KV positions do not fit a cache of {} tokens; use a larger -c", tokens,
                            capacity_));
  }
  if (key_offsets.size() != keys_.size() || value_offsets.size() != values_.size()) {
    throw Error(fmt::format("stored KV rows are for {} layers, the model has {}", key_offsets.size(), keys_.size()));
  }
  const size_t key_bytes = static_cast<size_t>(tokens) * key_row_bytes_;
  const size_t value_bytes = static_cast<size_t>(tokens) * value_row_bytes_;
  // Mapping needs page-aligned offsets, and whole pages inside the file: a
  // page past its end would fault (SIGBUS) when the cache writes to it.
  struct stat info {};
  if (::fstat(fd, &info) != 0) throw Error(fmt::format("cannot read the KV file: {}", std::strerror(errno)));
  const uint64_t file_size = static_cast<uint64_t>(info.st_size);
  auto mappable = [&](uint64_t offset, size_t bytes) {
    return offset % page_size() == 0 && offset + round_up_to_page(bytes) <= file_size;
  };
  bool aligned = true;
  for (size_t layer = 0; layer < keys_.size(); ++layer) {
    aligned = aligned && mappable(key_offsets[layer], key_bytes) && mappable(value_offsets[layer], value_bytes);
  }
  size_ = 0;
  if (tokens == 0) return true;
  auto place = [&](Region& region, uint64_t offset, size_t bytes) {
    if (aligned) {
      // MAP_FIXED replaces the anonymous pages in place; the whole pages past
      // `bytes` hold whatever follows in the file and are overwritten (copied
      // on write) before they are ever read as cache rows.
      void* mapped = ::mmap(region.data(), round_up_to_page(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED,
                            fd, static_cast<off_t>(offset));
      if (mapped == MAP_FAILED) {
        throw Error(fmt::format("cannot map KV rows at file offset {}: {}", offset, std::strerror(errno)));
      }
    } else {
      read_exactly(fd, region.data(), bytes, offset);
    }
  };
  for (size_t layer = 0; layer < keys_.size(); ++layer) {
    place(keys_[layer], key_offsets[layer], key_bytes);
    place(values_[layer], value_offsets[layer], value_bytes);
  }
  size_ = tokens;
  return aligned;
}

namespace {
void copy_kv_rows(const KvCache& cache, int64_t position, KvTrie& trie, KvSlot slot) {
  const KvLayout& layout = trie.layout();
  if (layout.layers != cache.layer_count() || static_cast<size_t>(layout.row_elements) != cache.row_elements()) {
    throw Error(fmt::format("keys and values of {} layers x {} values do not fit a store of {} layers x {} values",
                            cache.layer_count(), cache.row_elements(), layout.layers, layout.row_elements));
  }
  const KvTypes from = cache.types(), to = layout.types;
  const auto n = static_cast<size_t>(layout.row_elements);
  for (int64_t layer = 0; layer < layout.layers; ++layer) {
    convert_kv_row(cache.key_row(layer, position), from.keys, trie.key_row(layer, slot), to.keys, n);
    convert_kv_row(cache.value_row(layer, position), from.values, trie.value_row(layer, slot), to.values, n);
  }
}

}  // namespace

InsertedPrefix insert_prefix(KvTrie& trie, std::span<const TokenId> tokens, const KvCache& cache) {
  if (static_cast<int64_t>(tokens.size()) > cache.size()) {
    throw Error(fmt::format("{} tokens to insert but only {} rows of keys and values", tokens.size(), cache.size()));
  }
  InsertedPrefix inserted;
  for (size_t position = 0; position < tokens.size(); ++position) {
    bool created = false;
    inserted.node = trie.extend(inserted.node, tokens[position], &created);
    if (created) {
      copy_kv_rows(cache, static_cast<int64_t>(position), trie, trie.slot(inserted.node));
    } else {
      ++inserted.shared;  // computed before, for a prefix that begins alike
    }
  }
  return inserted;
}

}  // namespace frugal
