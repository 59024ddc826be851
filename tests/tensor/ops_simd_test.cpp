// Every instruction-set level's element-wise and row operations against the
// scalar ones (which the model tests check against the reference engine).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

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
  }
}

}  // namespace
}  // namespace frugal

namespace frugal {
namespace {

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
