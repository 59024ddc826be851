// Repacking quantized weights at load (tensor/packed_weights.h): which
// matrices, in parallel, and giving back the mapped pages they replace so
// that resident memory does not double.
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <set>

#include "frugal/error.h"
#include "model/model_impl.h"
#include "tensor/packed_calibration.h"

namespace frugal {

namespace {

bool wanted(TensorType type, WeightRepacking mode) {
  if (mode == WeightRepacking::Off || !repacking_available(type)) return false;
  return mode == WeightRepacking::On || repacking_pays(type);
}

// Drops this process's mapping of the whole pages inside [data, data + size):
// the next read (none is expected) would fault them in again from the file.
void give_back_pages(const uint8_t* data, size_t size) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + size) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace

void Model::Impl::repack_weights(WeightRepacking mode) {
  const auto start = std::chrono::steady_clock::now();
  // In the order a forward pass reads them: repacked into one buffer in that
  // order, decode streams through memory from the first layer to the output
  // (prefetches run on into the next matrix).
  std::vector<WeightMatrix*> matrices;
  for (LayerWeights& l : layers) {
    for (WeightMatrix* m : {&l.query, &l.key, &l.value, &l.attention_output, &l.gate, &l.up, &l.down}) {
      matrices.push_back(m);
    }
  }
  matrices.push_back(config.tied_embeddings ? &token_embedding : &output);
  if (!config.tied_embeddings) matrices.push_back(&token_embedding);
  std::vector<std::pair<WeightMatrix*, size_t>> chosen;  // and its offset in the buffer
  size_t total = 0;
  for (WeightMatrix* m : matrices) {
    const PackedLayout layout = packed_layout_for(m->type);
    if (layout == PackedLayout::None || m->cols % 32 != 0 || !wanted(m->type, mode)) continue;
    chosen.emplace_back(m, total);
    total += (packed_matrix_bytes(layout, static_cast<size_t>(m->rows), static_cast<size_t>(m->cols)) + 63) / 64 * 64;
  }
  if (chosen.empty()) return;
  // Whole huge pages, asked for: a decode step reads every byte, and 4 KiB
  // pages would cost a TLB miss every 4 KiB.
  constexpr size_t kHugePage = size_t{2} << 20;
  const size_t capacity = (total + kHugePage - 1) / kHugePage * kHugePage;
  PackedBuffer buffer(static_cast<uint8_t*>(std::aligned_alloc(kHugePage, capacity)));
  if (!buffer) throw Error("out of memory while repacking the model's weights (try --repack off)");
  madvise(buffer.get(), capacity, MADV_HUGEPAGE);
  std::set<std::string> formats;
  for (const auto& [m, offset] : chosen) {
    const PackedLayout layout = packed_layout_for(m->type);
    const size_t rows = static_cast<size_t>(m->rows);
    uint8_t* target = buffer.get() + offset;
    pool->parallel_for((rows + kPackedGroupRows - 1) / kPackedGroupRows, [&](size_t begin, size_t end) {
      pack_matrix_groups(layout, *m, begin, end, target);
    });
    give_back_pages(m->data, rows * m->row_bytes);
    m->packed_layout = layout;
    m->packed = target;
    repacking.matrices += 1;
    repacking.bytes += packed_matrix_bytes(layout, rows, static_cast<size_t>(m->cols));
    formats.insert(std::string(tensor_type_name(m->type)));
  }
  packed_storage = std::move(buffer);
  if (config.tied_embeddings) output = token_embedding;
  for (const std::string& f : formats) repacking.formats += (repacking.formats.empty() ? "" : ", ") + f;
  repacking.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace frugal
