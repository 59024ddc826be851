// Repacked weights (tensor/packed_weights.h): the layout gives back every
// stored row exactly; products over it match a naive double-precision sum of
// the dequantized values (within 1e-5 of sum |w * a|, only float summation
// order may differ) for every row count (partial groups), token count (past
// the 64-token chunks) and thread split; a token's result is the same bit for
// bit whichever tokens it is multiplied with.

#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "frugal/quant.h"
#include "frugal/tensor_type.h"
#include "tensor/kernel_set.h"
#include "tensor/matmul.h"
#include "tensor/packed_weights.h"
#include "tensor/test_data.h"
#include "tensor/thread_pool.h"

namespace frugal {
namespace {

struct Stored {
  TensorType type;
  size_t rows, cols, row_bytes;
  std::vector<uint8_t> bytes;
  WeightMatrix matrix() const {
    return {type, bytes.data(), static_cast<int64_t>(rows), static_cast<int64_t>(cols), row_bytes};
  }
};

Stored make_stored(TensorType type, size_t rows, size_t cols, uint32_t seed) {
  Stored s{type, rows, cols, tensor_row_bytes(type, cols), {}};
  s.bytes.resize(s.row_bytes * rows);
  for (size_t r = 0; r < rows; ++r) {
    std::vector<float> values = test::gaussian(cols, seed + static_cast<uint32_t>(r));
    // Blocks of very different magnitudes, and one of zeros.
    for (size_t c = 0; c < cols; ++c) values[c] *= (c / 32) % 3 == 0 ? 100.0f : ((c / 32) % 5 == 4 ? 0.0f : 1.0f);
    quantize_row(type, values.data(), s.bytes.data() + r * s.row_bytes, cols);
  }
  return s;
}

std::vector<uint8_t> pack(const Stored& s, PackedLayout layout) {
  std::vector<uint8_t> packed(packed_matrix_bytes(layout, s.rows, s.cols));
  pack_matrix_groups(layout, s.matrix(), 0, (s.rows + kPackedGroupRows - 1) / kPackedGroupRows, packed.data());
  return packed;
}

bool has_min(TensorType type) { return type == TensorType::Q4_1 || type == TensorType::Q5_1; }
size_t block_bytes(TensorType type) { return tensor_row_bytes(type, 32); }
double half_at(const uint8_t* p, size_t offset) {
  uint16_t bits;
  std::memcpy(&bits, p + offset, 2);
  return f16_to_f32(bits);
}

struct Case {
  TensorType type;
  const char* name;
};

class PackedWeights : public ::testing::TestWithParam<Case> {};

void products_match_a_naive_sum(TensorType type, PackedLayout layout, DotPackedFn dot);

TEST_P(PackedWeights, GivesBackEveryStoredRowExactly) {
  const TensorType type = GetParam().type;
  const PackedLayout layout = packed_layout_for(type);
  ASSERT_NE(layout, PackedLayout::None);
  for (const size_t rows : {1u, 16u, 37u}) {
    const Stored s = make_stored(type, rows, 3 * packed_block_elements(layout), 7);
    // A group takes 16 stored rows' bytes (Q4_K: its scales unpacked, 2.8% more).
    EXPECT_GE(packed_matrix_bytes(layout, 16, s.cols), 16 * s.row_bytes);
    EXPECT_LE(packed_matrix_bytes(layout, 16, s.cols), 16 * s.row_bytes * 103 / 100);
    const std::vector<uint8_t> packed = pack(s, layout);
    std::vector<float> expected(s.cols), got(s.cols);
    for (size_t r = 0; r < rows; ++r) {
      dequantize_row(type, s.bytes.data() + r * s.row_bytes, expected.data(), s.cols);
      dequantize_packed_row(layout, packed.data(), s.cols, r, got.data());
      for (size_t c = 0; c < s.cols; ++c) ASSERT_EQ(got[c], expected[c]) << "row " << r << " col " << c;
    }
  }
}

TEST_P(PackedWeights, ProductsMatchANaiveSumForEveryShape) {
  const TensorType type = GetParam().type;
  const PackedLayout layout = packed_layout_for(type);
  for (const Isa isa : {Isa::Avx2, Isa::Avx512}) {
    if (!cpu_supports(isa)) continue;
    SCOPED_TRACE(std::string(isa_name(isa)));
    const DotPackedFn dot = kernel_set(isa).dot_packed[static_cast<size_t>(layout)];
    ASSERT_NE(dot, nullptr);
    products_match_a_naive_sum(type, layout, dot);
  }
}

void products_match_a_naive_sum(TensorType type, PackedLayout layout, DotPackedFn dot) {
  const TensorType activation = activation_type(type);
  const size_t block = packed_block_elements(layout);
  // One block, a few, and more than a chunk (prefill takes 4 K super-blocks
  // at a time, decode all).
  for (const size_t cols : {block, 3 * block, (block == 32 ? 65 : 9) * block}) {
    for (const size_t rows : {1u, 16u, 37u, 80u}) {
      const Stored s = make_stored(type, rows, cols, static_cast<uint32_t>(rows * 31 + cols));
      const std::vector<uint8_t> packed = pack(s, layout);
      const size_t group_bytes = packed_matrix_bytes(layout, kPackedGroupRows, cols);
      for (const size_t tokens : {1u, 2u, 3u, 4u, 5u, 8u, 9u, 11u, 70u}) {  // every tile width (AVX-512: 6)
        const size_t a_bytes = tensor_row_bytes(activation, cols);
        std::vector<uint8_t> acts(a_bytes * tokens);
        for (size_t t = 0; t < tokens; ++t) {
          const std::vector<float> x = test::gaussian(cols, static_cast<uint32_t>(1000 + t));
          quantize_row(activation, x.data(), acts.data() + t * a_bytes, cols);
        }
        const size_t out_stride = rows + 3;  // respected, and nothing else written
        std::vector<float> out(out_stride * tokens, -12345.0f);
        dot(packed.data(), group_bytes, acts.data(), a_bytes, cols, rows, tokens, out.data(), out_stride);
        std::vector<float> w(cols), a(cols);
        for (size_t t = 0; t < tokens; ++t) {
          dequantize_row(activation, acts.data() + t * a_bytes, a.data(), cols);
          for (size_t r = 0; r < rows; ++r) {
            dequantize_row(type, s.bytes.data() + r * s.row_bytes, w.data(), cols);
            double sum = 0, magnitude = 0;
            for (size_t c = 0; c < cols; ++c) {
              sum += static_cast<double>(w[c]) * a[c];
              magnitude += std::fabs(static_cast<double>(w[c]) * a[c]);
            }
            if (has_min(type)) {
              // The kernels take each block's m times the activation's s
              // (d * sum(q), rounded to fp16 in the Q8_1 block), as
              // every Q4_1 / Q5_1 kernel does: the reference does too.
              for (size_t k = 0; k < cols / 32; ++k) {
                const double m = half_at(s.bytes.data() + r * s.row_bytes + k * block_bytes(type), 2);
                const double block_s = half_at(acts.data() + t * a_bytes + k * 36, 2);
                double sum_a = 0;
                for (size_t c = 32 * k; c < 32 * k + 32; ++c) sum_a += a[c];
                sum += m * (block_s - sum_a);
              }
            }
            ASSERT_NEAR(out[t * out_stride + r], sum, 1e-5 * magnitude + 1e-30)
                << "rows " << rows << " cols " << cols << " tokens " << tokens << " at row " << r << " token " << t;
          }
          for (size_t r = rows; r < out_stride; ++r) ASSERT_EQ(out[t * out_stride + r], -12345.0f);
        }
        // Each token alone gives its batched result bit for bit.
        for (size_t t = 0; t < tokens; t += 4) {
          std::vector<float> alone(rows);
          dot(packed.data(), group_bytes, acts.data() + t * a_bytes, a_bytes, cols, rows, 1, alone.data(), rows);
          for (size_t r = 0; r < rows; ++r) ASSERT_EQ(alone[r], out[t * out_stride + r]) << "token " << t;
        }
      }
    }
  }
}

// Through matmul(): threads take parts starting on a group; the packed copy
// is used and the stored bytes are never read (they are overwritten here).
TEST_P(PackedWeights, MatmulUsesThePackedCopyAcrossThreads) {
  const TensorType type = GetParam().type;
  const PackedLayout layout = packed_layout_for(type);
  if (active_kernels().dot_packed[static_cast<size_t>(layout)] == nullptr) {
    GTEST_SKIP() << "no repacked kernel at this level";
  }
  Stored s = make_stored(type, 200, 512, 3);
  const std::vector<uint8_t> packed = pack(s, layout);
  const WeightMatrix stored_view = s.matrix();
  ThreadPool pool(3);
  const size_t tokens = 5;
  const std::vector<float> in = test::gaussian(tokens * s.cols, 99);
  std::vector<float> expected(tokens * s.rows), got(tokens * s.rows);
  matmul(stored_view, in.data(), tokens, expected.data(), pool);
  std::vector<uint8_t> scrambled = test::random_bytes(s.bytes.size(), 5);
  s.bytes.swap(scrambled);
  WeightMatrix packed_view = s.matrix();
  packed_view.packed_layout = layout;
  packed_view.packed = packed.data();
  matmul(packed_view, in.data(), tokens, got.data(), pool);
  float largest = 0;
  for (const float e : expected) largest = std::max(largest, std::fabs(e));
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], expected[i], 1e-4 * (1 + largest)) << i;
  std::vector<float> row(s.cols), stored_row(s.cols);
  dequantize_matrix_row(packed_view, 123, row.data());
  dequantize_row(type, scrambled.data() + 123 * s.row_bytes, stored_row.data(), s.cols);
  EXPECT_EQ(row, stored_row);
}

INSTANTIATE_TEST_SUITE_P(Formats, PackedWeights,
                         ::testing::Values(Case{TensorType::Q8_0, "Q8_0"}, Case{TensorType::Q4_0, "Q4_0"},
                                           Case{TensorType::Q4_1, "Q4_1"}, Case{TensorType::Q5_0, "Q5_0"},
                                           Case{TensorType::Q5_1, "Q5_1"}, Case{TensorType::Q4_K, "Q4_K"},
                                           Case{TensorType::Q6_K, "Q6_K"}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace frugal
