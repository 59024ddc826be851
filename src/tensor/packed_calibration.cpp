#include "tensor/packed_calibration.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <vector>

#include "frugal/quant.h"
#include "tensor/kernel_set.h"
#include "tensor/matmul.h"

namespace frugal {

namespace {

// A matrix that stays in L2 (the decision is about compute, which is what
// limits the stored layout's kernels), long rows as in real models.
constexpr size_t kRows = 256;
constexpr size_t kCols = 2048;
constexpr int kRounds = 15;

double seconds_of(const auto& work) {
  const auto start = std::chrono::steady_clock::now();
  work();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

bool measure(TensorType type) {
  const KernelSet& kernels = active_kernels();
  const PackedLayout layout = packed_layout_for(type);
  const TensorType activation = activation_type(type);
  const size_t row_bytes = tensor_row_bytes(type, kCols);
  std::vector<uint8_t> stored(row_bytes * kRows);
  std::vector<float> row(kCols);
  uint32_t state = 12345;
  for (size_t r = 0; r < kRows; ++r) {
    for (float& x : row) {
      state = state * 1664525u + 1013904223u;
      x = static_cast<float>(static_cast<int32_t>(state >> 8) % 2001 - 1000) / 1000.0f;
    }
    quantize_row(type, row.data(), stored.data() + r * row_bytes, kCols);
  }
  std::vector<uint8_t> activations(tensor_row_bytes(activation, kCols));
  kernels.quantize_activation[type_slot(activation)](row.data(), activations.data(), kCols);

  const WeightMatrix weight{type, stored.data(), kRows, kCols, row_bytes};
  std::vector<uint8_t> packed(packed_matrix_bytes(layout, kRows, kCols));
  pack_matrix_groups(layout, weight, 0, (kRows + kPackedGroupRows - 1) / kPackedGroupRows, packed.data());
  const size_t group_bytes = packed_matrix_bytes(layout, kPackedGroupRows, kCols);

  std::vector<float> out(kRows);
  const auto run_stored = [&] {
    kernels.dot_tile[type_slot(type)](stored.data(), row_bytes, activations.data(), 0, kCols, kRows, 1, out.data(),
                                      kRows);
  };
  const auto run_packed = [&] {
    kernels.dot_packed[static_cast<size_t>(layout)](packed.data(), group_bytes, activations.data(), 0, kCols, kRows,
                                                    1, out.data(), kRows);
  };
  run_stored();
  run_packed();
  double best_stored = INFINITY, best_packed = INFINITY;
  for (int i = 0; i < kRounds; ++i) {
    best_stored = std::min(best_stored, seconds_of(run_stored));
    best_packed = std::min(best_packed, seconds_of(run_packed));
  }
  return best_packed < best_stored;
}

}  // namespace

bool repacking_available(TensorType type) {
  const PackedLayout layout = packed_layout_for(type);
  return layout != PackedLayout::None && active_kernels().dot_packed[static_cast<size_t>(layout)] != nullptr;
}

bool repacking_pays(TensorType type) {
  if (!repacking_available(type)) return false;
  static std::mutex mutex;
  static int decided[kTensorTypeSlots] = {};  // 0: not yet, 1: no, 2: yes
  const std::lock_guard lock(mutex);
  int& answer = decided[type_slot(type)];
  if (answer == 0) answer = measure(type) ? 2 : 1;
  return answer == 2;
}

}  // namespace frugal
