#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/model.h"

namespace frugal {

KvCache::KvCache(const ModelConfig& config, int64_t context_size, KvPrecision precision)
    : capacity_(context_size),
      row_elements_(config.kv_head_count * config.head_size),
      element_bytes_(precision == KvPrecision::F32 ? 4 : 2),
      precision_(precision) {
  if (context_size <= 0) throw Error(fmt::format("context size must be positive, got {}", context_size));
  const size_t layer_bytes = static_cast<size_t>(capacity_ * row_elements_) * element_bytes_;
  keys_.assign(static_cast<size_t>(config.layer_count), std::vector<uint8_t>(layer_bytes));
  values_.assign(static_cast<size_t>(config.layer_count), std::vector<uint8_t>(layer_bytes));
}

void KvCache::truncate(int64_t position) {
  if (position < 0 || position > size_) {
    throw Error(fmt::format("cannot truncate a KV cache of {} tokens to {}", size_, position));
  }
  size_ = position;
}

size_t KvCache::bytes() const {
  size_t total = 0;
  for (const auto& layer : keys_) total += layer.size();
  for (const auto& layer : values_) total += layer.size();
  return total;
}

void* KvCache::key_row(int64_t layer, int64_t position) {
  return keys_[static_cast<size_t>(layer)].data() + static_cast<size_t>(position * row_elements_) * element_bytes_;
}

void* KvCache::value_row(int64_t layer, int64_t position) {
  return values_[static_cast<size_t>(layer)].data() + static_cast<size_t>(position * row_elements_) * element_bytes_;
}

}  // namespace frugal
