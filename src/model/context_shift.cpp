// Context shift: the rows after the discarded window move down and their
// keys turn back by the window's length, since a rotary embedding at
// position p followed by one of -d is the embedding at p - d.
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "frugal/error.h"
#include "model/model_impl.h"

namespace frugal {

void Model::turn_key_row(void* row, KvPrecision precision, int64_t delta) const {
  const ModelConfig& c = impl_->config;
  const RotaryEmbedding& rope = *impl_->rope;
  thread_local std::vector<float> cosines, sines, key;
  cosines.resize(static_cast<size_t>(rope.pairs()));
  sines.resize(cosines.size());
  rope.shift_angles(delta, cosines.data(), sines.data());
  const size_t n = static_cast<size_t>(c.kv_head_count * c.head_size), head_size = static_cast<size_t>(c.head_size);
  key.resize(n);
  load_kv_row(row, precision, key.data(), n);
  for (size_t head = 0; head < static_cast<size_t>(c.kv_head_count); ++head) {
    rope.rotate(key.data() + head * head_size, cosines.data(), sines.data());
  }
  store_kv_row(key.data(), row, n, precision);
}

void Model::shift_context(KvCache& cache, int64_t keep, int64_t discard) {
  const ModelConfig& c = impl_->config;
  if (keep < 0 || discard <= 0 || keep + discard > cache.size()) {
    throw Error(fmt::format("context shift: cannot keep {} and discard {} of {} cached tokens", keep, discard,
                            cache.size()));
  }
  if (cache.row_elements() != static_cast<size_t>(c.kv_head_count * c.head_size)) {
    throw Error("context shift: the KV cache was made for a different model");
  }
  for (int64_t layer = 0; layer < cache.layer_count(); ++layer) {
    for (int64_t from = keep + discard; from < cache.size(); ++from) {
      const int64_t to = from - discard;
      // Rows never overlap (to < from): plain copies.
      std::memcpy(cache.key_row(layer, to), cache.key_row(layer, from), cache.key_row_bytes());
      turn_key_row(cache.key_row(layer, to), cache.types().keys, -discard);
      std::memcpy(cache.value_row(layer, to), cache.value_row(layer, from), cache.value_row_bytes());
    }
  }
  cache.size_ -= discard;
}

}  // namespace frugal
