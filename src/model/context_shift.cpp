// Context shift: the rows after the discarded window move down and their
// keys turn back by the window's length, since a rotary embedding at
// position p followed by one of -d is the embedding at p - d.
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "frugal/error.h"
#include "model/model_impl.h"

namespace frugal {

void Model::shift_context(KvCache& cache, int64_t keep, int64_t discard) {
  const ModelConfig& c = impl_->config;
  if (keep < 0 || discard <= 0 || keep + discard > cache.size()) {
    throw Error(fmt::format("context shift: cannot keep {} and discard {} of {} cached tokens", keep, discard,
                            cache.size()));
  }
  if (cache.row_elements() != static_cast<size_t>(c.kv_head_count * c.head_size)) {
    throw Error("context shift: the KV cache was made for a different model");
  }
  const RotaryEmbedding& rope = *impl_->rope;
  std::vector<float> cosines(static_cast<size_t>(rope.pairs())), sines(cosines.size());
  rope.shift_angles(-discard, cosines.data(), sines.data());
  const size_t n = cache.row_elements(), head_size = static_cast<size_t>(c.head_size);
  std::vector<float> key(n);
  for (int64_t layer = 0; layer < cache.layer_count(); ++layer) {
    for (int64_t from = keep + discard; from < cache.size(); ++from) {
      const int64_t to = from - discard;
      load_kv_row(cache.key_row(layer, from), cache.precision(), key.data(), n);
      for (size_t head = 0; head < static_cast<size_t>(c.kv_head_count); ++head) {
        rope.rotate(key.data() + head * head_size, cosines.data(), sines.data());
      }
      store_kv_row(key.data(), cache.key_row(layer, to), n, cache.precision());
      // Rows never overlap (to < from): a plain copy.
      std::memcpy(cache.value_row(layer, to), cache.value_row(layer, from), cache.row_bytes());
    }
  }
  cache.size_ -= discard;
}

}  // namespace frugal
