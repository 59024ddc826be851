#include <new>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/model.h"

namespace frugal {

KvCache::KvCache(const ModelConfig& config, int64_t context_size, KvPrecision precision)
    : capacity_(context_size),
      row_elements_(config.kv_head_count * config.head_size),
      element_bytes_(precision == KvPrecision::F32 ? 4 : 2),
      precision_(precision) {
  constexpr int64_t kMaxContext = int64_t{1} << 26;
  if (context_size <= 0 || context_size > kMaxContext) {
    throw Error(fmt::format("context size must be between 1 and {}, got {}", kMaxContext, context_size));
  }
  // Both factors are bounded (context here, dimensions by ModelConfig), so
  // the product fits; the total is reported before the allocation is tried.
  const size_t layer_bytes = static_cast<size_t>(capacity_) * static_cast<size_t>(row_elements_) * element_bytes_;
  const double total_gib = 2.0 * static_cast<double>(layer_bytes) * static_cast<double>(config.layer_count) /
                           static_cast<double>(1ull << 30);
  try {
    keys_.assign(static_cast<size_t>(config.layer_count), std::vector<uint8_t>(layer_bytes));
    values_.assign(static_cast<size_t>(config.layer_count), std::vector<uint8_t>(layer_bytes));
  } catch (const std::bad_alloc&) {
    throw Error(fmt::format("not enough memory for a KV cache of {} tokens ({:.2f} GiB); use a smaller -c or "
                            "--cache-type f16", context_size, total_gib));
  }
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

KvCache KvCache::clone() const {
  KvCache copy;
  copy.capacity_ = capacity_;
  copy.size_ = size_;
  copy.row_elements_ = row_elements_;
  copy.element_bytes_ = element_bytes_;
  copy.precision_ = precision_;
  const size_t filled = static_cast<size_t>(size_ * row_elements_) * element_bytes_;
  auto copy_layers = [&](const std::vector<std::vector<uint8_t>>& from, std::vector<std::vector<uint8_t>>& to) {
    to.resize(from.size());
    for (size_t layer = 0; layer < from.size(); ++layer) {
      // Only the filled part is copied; the rest is zeroed as a new cache's is.
      to[layer].reserve(from[layer].size());
      to[layer].assign(from[layer].begin(), from[layer].begin() + static_cast<std::ptrdiff_t>(filled));
      to[layer].resize(from[layer].size());
    }
  };
  try {
    copy_layers(keys_, copy.keys_);
    copy_layers(values_, copy.values_);
  } catch (const std::bad_alloc&) {
    throw Error(fmt::format("not enough memory to copy a KV cache of {} tokens ({} bytes)", capacity_, bytes()));
  }
  return copy;
}

size_t KvCache::filled_bytes() const {
  return 2 * keys_.size() * static_cast<size_t>(size_ * row_elements_) * element_bytes_;
}

void* KvCache::key_row(int64_t layer, int64_t position) {
  return keys_[static_cast<size_t>(layer)].data() + static_cast<size_t>(position * row_elements_) * element_bytes_;
}

void* KvCache::value_row(int64_t layer, int64_t position) {
  return values_[static_cast<size_t>(layer)].data() + static_cast<size_t>(position * row_elements_) * element_bytes_;
}

}  // namespace frugal
