// Every instruction-set level's element-wise and row operations against the
// scalar ones (which the model tests check against the reference engine).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "frugal/quant.h"
#include "tensor/kernel_set.h"

namespace frugal {
namespace {

std::vector<Isa> simd_levels() {
  std::vector<Isa> levels;
  for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
    if (cpu_supports(isa)) levels.push_back(isa);
  }
  return levels;
}

std::vector<float> random_values(size_t n, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

TEST(OpsSimd, SwigluMatchesScalar) {
  const auto& scalar = kernel_set(Isa::Scalar);
  for (Isa isa : simd_levels()) {
    for (size_t n : {1u, 7u, 8u, 16u, 33u, 1536u}) {
      auto gate = random_values(n, 4.0f, 1), up = random_values(n, 1.0f, 2);
      gate[0] = 95.0f;  // beyond exp's range on the negative side: silu(x) = x
      if (n > 1) gate[1] = -95.0f;
      auto expected = gate, actual = gate;
      scalar.swiglu(expected.data(), up.data(), n);
      kernel_set(isa).swiglu(actual.data(), up.data(), n);
      for (size_t i = 0; i < n; ++i) {
        EXPECT_NEAR(actual[i], expected[i], 1e-6f * (1.0f + std::abs(expected[i]))) << isa_name(isa) << " " << i;
      }
    }
  }
}

TEST(OpsSimd, SoftmaxMatchesScalar) {
  const auto& scalar = kernel_set(Isa::Scalar);
  for (Isa isa : simd_levels()) {
    for (size_t n : {1u, 5u, 16u, 17u, 100u, 513u}) {
      auto x = random_values(n, 6.0f, 3);
      if (n > 3) x[3] = -1e30f;  // a masked position
      auto expected = x, actual = x;
      scalar.softmax(expected.data(), n);
      kernel_set(isa).softmax(actual.data(), n);
      double sum = 0;
      for (size_t i = 0; i < n; ++i) {
        EXPECT_NEAR(actual[i], expected[i], 1e-6f + 1e-5f * expected[i]) << isa_name(isa) << " " << i;
        sum += actual[i];
      }
      EXPECT_NEAR(sum, 1.0, 1e-5);
    }
  }
}

TEST(OpsSimd, WeightedSumAndDotMatchScalar) {
  const auto& scalar = kernel_set(Isa::Scalar);
  for (Isa isa : simd_levels()) {
    const auto& k = kernel_set(isa);
    for (size_t n : {8u, 13u, 64u, 80u, 128u}) {
      for (size_t count : {1u, 3u, 40u}) {
        const size_t stride = n + 5;
        // One spare row: the dot/axpy checks below also read row 1.
        const auto rows = random_values((count + 1) * stride, 1.0f, 4), weights = random_values(count, 1.0f, 5);
        std::vector<float> expected(n + 1, -7.0f), actual(n + 1, -7.0f);  // the sums add onto -7
        scalar.weighted_sum_f32(weights.data(), count, rows.data(), stride, expected.data(), n);
        k.weighted_sum_f32(weights.data(), count, rows.data(), stride, actual.data(), n);
        for (size_t i = 0; i < n; ++i) EXPECT_NEAR(actual[i], expected[i], 1e-4f) << isa_name(isa);
        EXPECT_EQ(actual[n], -7.0f);  // nothing written past n
        // Two calls over the two halves of the rows: bit for bit one call.
        std::vector<float> split(n, -7.0f);
        const size_t half = count / 2;
        k.weighted_sum_f32(weights.data(), half, rows.data(), stride, split.data(), n);
        k.weighted_sum_f32(weights.data() + half, count - half, rows.data() + half * stride, stride, split.data(), n);
        for (size_t i = 0; i < n; ++i) EXPECT_EQ(split[i], actual[i]) << isa_name(isa) << " " << i;
        EXPECT_NEAR(k.dot_f32(rows.data(), rows.data() + stride, n), scalar.dot_f32(rows.data(), rows.data() + stride, n),
                    1e-4f);
        std::vector<float> y1(rows.begin(), rows.begin() + static_cast<long>(n)), y2 = y1;
        scalar.axpy_f32(0.5f, rows.data() + stride, y1.data(), n);
        k.axpy_f32(0.5f, rows.data() + stride, y2.data(), n);
        for (size_t i = 0; i < n; ++i) EXPECT_NEAR(y1[i], y2[i], 1e-6f);
      }
    }
  }
}

TEST(KernelLevels, EveryLevelHasEveryKernel) {
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (!cpu_supports(isa)) continue;
    const auto& k = kernel_set(isa);
    for (TensorType t : {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q4_0, TensorType::Q4_1,
                         TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0, TensorType::Q2_K, TensorType::Q3_K,
                         TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
      EXPECT_NE(k.dot_tile[type_slot(t)], nullptr) << isa_name(isa) << " " << tensor_type_name(t);
    }
    for (TensorType t : {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q8_0, TensorType::Q8_1,
                         TensorType::Q8_K}) {
      EXPECT_NE(k.quantize_activation[type_slot(t)], nullptr) << isa_name(isa) << " " << tensor_type_name(t);
    }
    EXPECT_TRUE(k.rms_norm && k.swiglu && k.softmax && k.weighted_sum_f32 && k.dot_f32 && k.axpy_f32);
    EXPECT_TRUE(k.weighted_sum_f16 && k.weighted_sums_f32 && k.weighted_sums_f16 && k.key_scores_f32 &&
                k.key_scores_f16 && k.kv_rows_q8_0 && k.kv_rows_q4_0);
  }
}

// Attention's kernels at every level (scalar included) against sums in
// double over the same F32 or F16 values, for head sizes with and without
// a tail, key counts around the 16-key steps, and 1 to 5 query heads.
std::vector<uint16_t> to_halves(const std::vector<float>& x) {
  std::vector<uint16_t> h(x.size());
  kernel_set(Isa::Scalar).quantize_activation[type_slot(TensorType::F16)](x.data(), h.data(), x.size());
  return h;
}

TEST(AttentionKernels, KeyScoresMatchADoubleSum) {
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (!cpu_supports(isa)) continue;
    const auto& k = kernel_set(isa);
    for (size_t head_size : {64u, 72u, 8u}) {
      for (size_t count : {1u, 15u, 16u, 17u, 70u}) {
        for (size_t queries : {1u, 3u, 5u}) {
          const size_t key_stride = head_size * 3 + 8;  // a row holds other heads too
          const auto keys = random_values(count * key_stride, 1.0f, static_cast<uint32_t>(count));
          const auto keys16 = to_halves(keys);
          const auto q = random_values(queries * head_size * 2, 1.0f, 7);  // queries 2 * head_size apart
          const size_t score_stride = count + 3;  // respected, and nothing else written
          std::vector<float> got(queries * score_stride, -1.0f), got16(queries * score_stride, -1.0f);
          k.key_scores_f32(keys.data(), key_stride, count, q.data(), 2 * head_size, queries, head_size, got.data(),
                           score_stride);
          k.key_scores_f16(keys16.data(), key_stride, count, q.data(), 2 * head_size, queries, head_size,
                           got16.data(), score_stride);
          for (size_t a = 0; a < queries; ++a) {
            for (size_t j = 0; j < count; ++j) {
              double sum = 0, sum16 = 0, magnitude = 0;
              for (size_t i = 0; i < head_size; ++i) {
                const double x = q[a * 2 * head_size + i];
                sum += keys[j * key_stride + i] * x;
                sum16 += f16_to_f32(keys16[j * key_stride + i]) * x;
                magnitude += std::fabs(keys[j * key_stride + i] * x);
              }
              ASSERT_NEAR(got[a * score_stride + j], sum, 1e-5 * magnitude) << isa_name(isa) << " hs " << head_size;
              ASSERT_NEAR(got16[a * score_stride + j], sum16, 1e-5 * magnitude) << isa_name(isa) << " hs " << head_size;
            }
            for (size_t j = count; j < score_stride; ++j) {
              ASSERT_EQ(got[a * score_stride + j], -1.0f) << "past count";
              ASSERT_EQ(got16[a * score_stride + j], -1.0f) << "past count";
            }
          }
        }
      }
    }
  }
}

TEST(AttentionKernels, WeightedSumsMatchADoubleSumAndSplitBitForBit) {
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
    if (!cpu_supports(isa)) continue;
    const auto& k = kernel_set(isa);
    for (size_t n : {64u, 72u, 128u, 8u, 32u, 40u, 96u, 112u}) {
      for (size_t outputs : {1u, 3u, 4u, 6u}) {
        const size_t count = 37, row_stride = n + 5, weight_stride = count + 2, out_stride = n + 3;
        const auto rows = random_values(count * row_stride, 1.0f, static_cast<uint32_t>(n));
        const auto rows16 = to_halves(rows);
        const auto weights = random_values(outputs * weight_stride, 1.0f, 3);
        std::vector<float> out(outputs * out_stride, 0.5f), out16 = out, split = out;
        k.weighted_sums_f32(weights.data(), weight_stride, outputs, count, rows.data(), row_stride, out.data(),
                            out_stride, n);
        k.weighted_sums_f16(weights.data(), weight_stride, outputs, count, rows16.data(), row_stride, out16.data(),
                            out_stride, n);
        k.weighted_sums_f32(weights.data(), weight_stride, outputs, 20, rows.data(), row_stride, split.data(),
                            out_stride, n);
        k.weighted_sums_f32(weights.data() + 20, weight_stride, outputs, count - 20, rows.data() + 20 * row_stride,
                            row_stride, split.data(), out_stride, n);
        EXPECT_EQ(split, out) << isa_name(isa) << ": two calls must give what one gives";
        for (size_t o = 0; o < outputs; ++o) {
          std::vector<float> one(n, 0.5f);
          k.weighted_sum_f16(weights.data() + o * weight_stride, count, rows16.data(), row_stride, one.data(), n);
          for (size_t i = 0; i < n; ++i) {
            double sum = 0.5, sum16 = 0.5, magnitude = 0.5;
            for (size_t j = 0; j < count; ++j) {
              sum += weights[o * weight_stride + j] * rows[j * row_stride + i];
              sum16 += weights[o * weight_stride + j] * f16_to_f32(rows16[j * row_stride + i]);
              magnitude += std::fabs(weights[o * weight_stride + j] * rows[j * row_stride + i]);
            }
            ASSERT_NEAR(out[o * out_stride + i], sum, 1e-5 * magnitude) << isa_name(isa);
            ASSERT_NEAR(out16[o * out_stride + i], sum16, 1e-5 * magnitude) << isa_name(isa);
            ASSERT_NEAR(one[i], sum16, 1e-5 * magnitude) << isa_name(isa);
          }
          for (size_t i = n; i < out_stride; ++i) ASSERT_EQ(out[o * out_stride + i], 0.5f) << "past n";
        }
      }
    }
  }
}

}  // namespace
}  // namespace frugal

namespace frugal {
namespace {

// Quantized KV rows read back at every level give what dequantize_row gives
// (the reference dequantizer, checked against ggml's blocks elsewhere): one
// head's blocks out of rows with other heads' blocks between them.
TEST(AttentionKernels, KvRowsMatchTheReferenceDequantizer) {
  for (const TensorType type : {TensorType::Q8_0, TensorType::Q4_0}) {
    const size_t row_values = 192, head_blocks = 2, rows = 37;
    const size_t row_bytes = type == TensorType::Q8_0 ? 6 * 34 : 6 * 18, skip = row_bytes / 3;  // from head 1
    const std::vector<float> values = random_values(rows * row_values, 2.0f, 5);
    std::vector<uint8_t> stored(rows * row_bytes);
    for (size_t j = 0; j < rows; ++j) quantize_row(type, &values[j * row_values], &stored[j * row_bytes], row_values);
    std::vector<float> expected(rows * 64), row(row_values);
    for (size_t j = 0; j < rows; ++j) {
      dequantize_row(type, &stored[j * row_bytes], row.data(), row_values);
      std::copy(row.begin() + 64, row.begin() + 128, expected.begin() + static_cast<std::ptrdiff_t>(j * 64));
    }
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
      if (!cpu_supports(isa)) continue;
      const auto& k = kernel_set(isa);
      std::vector<float> actual(rows * 64, -1.0f);
      (type == TensorType::Q8_0 ? k.kv_rows_q8_0 : k.kv_rows_q4_0)(stored.data() + skip, row_bytes, rows,
                                                                   head_blocks, actual.data());
      EXPECT_EQ(actual, expected) << isa_name(isa) << " " << tensor_type_name(type);
    }
  }
}

TEST(OpsSimd, RmsNormMatchesScalar) {
  const auto& scalar = kernel_set(Isa::Scalar);
  for (Isa isa : simd_levels()) {
    for (size_t n : {1u, 7u, 64u, 576u, 897u}) {
      const auto x = random_values(n, 3.0f, 6), weight = random_values(n, 1.0f, 7);
      std::vector<float> expected(n), actual(n);
      scalar.rms_norm(x.data(), weight.data(), expected.data(), n, 1e-6f);
      kernel_set(isa).rms_norm(x.data(), weight.data(), actual.data(), n, 1e-6f);
      for (size_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(actual[i], expected[i]) << isa_name(isa) << " " << i;
    }
  }
}

}  // namespace
}  // namespace frugal
