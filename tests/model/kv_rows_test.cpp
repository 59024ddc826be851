// Key and value rows in every KV type: the Hadamard turn against the matrix
// written out (Sylvester's construction), each type's round-trip error
// within what its step allows, and the claim behind Q4_H: on rows with a few
// large channels (as keys have) it loses clearly less than ggml's Q4_0.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "frugal/kv_precision.h"
#include "model/kv_rows.h"

namespace frugal {
namespace {

std::vector<float> normal(size_t n, float scale, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Rows of 4 heads x 64 channels where channels 3 and 40 of every head are
// 12 times larger than the rest (outlier channels of keys).
std::vector<float> keys_with_outliers(size_t rows, uint32_t seed) {
  std::vector<float> x = normal(rows * 256, 1.0f, seed);
  for (size_t i = 0; i < x.size(); ++i) {
    if (i % 64 == 3 || i % 64 == 40) x[i] *= 12.0f;
  }
  return x;
}

double round_trip_error(KvPrecision precision, const std::vector<float>& x, size_t row) {
  std::vector<uint8_t> stored(kv_bytes(precision, row));
  std::vector<float> back(row);
  double error = 0;
  for (size_t start = 0; start < x.size(); start += row) {
    store_kv_row(&x[start], stored.data(), row, precision);
    load_kv_row(stored.data(), precision, back.data(), row);
    for (size_t i = 0; i < row; ++i) error += std::pow(static_cast<double>(back[i]) - x[start + i], 2);
  }
  return error / static_cast<double>(x.size());
}

TEST(KvRows, HadamardTurnIsTheOrthonormalSylvesterMatrix) {
  // H(i, j) = (-1)^popcount(i & j) / sqrt(32)
  const std::vector<float> x = normal(64, 1.0f, 3);
  std::vector<float> turned = x;
  rotate_kv_blocks(turned.data(), turned.size());
  for (size_t block = 0; block < 2; ++block) {
    for (size_t i = 0; i < 32; ++i) {
      double expected = 0;
      for (size_t j = 0; j < 32; ++j) {
        const double sign = __builtin_popcountll(i & j) % 2 == 0 ? 1.0 : -1.0;
        expected += sign * x[block * 32 + j] / std::sqrt(32.0);
      }
      EXPECT_NEAR(turned[block * 32 + i], expected, 1e-5);
    }
  }
  rotate_kv_blocks(turned.data(), turned.size());  // its own inverse
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(turned[i], x[i], 1e-5);
}

TEST(KvRows, EveryTypeReadsBackWithinItsStep) {
  const std::vector<float> x = normal(16 * 256, 1.0f, 7);
  EXPECT_EQ(round_trip_error(KvPrecision::F32, x, 256), 0.0);
  EXPECT_LT(round_trip_error(KvPrecision::F16, x, 256), 1e-7);
  // Uniform rounding error of a step s has variance s^2 / 12; a block's
  // step is about its largest value (~2.5 sigma here) / 127 or / 8.
  EXPECT_LT(round_trip_error(KvPrecision::Q8_0, x, 256), std::pow(3.0 / 127, 2) / 12);
  EXPECT_LT(round_trip_error(KvPrecision::Q4_0, x, 256), std::pow(3.0 / 8, 2) / 12 * 1.5);
  EXPECT_LT(round_trip_error(KvPrecision::Q4_H, x, 256), std::pow(3.0 / 8, 2) / 12 * 1.5);
}

TEST(KvRows, TurnedFourBitsLoseLessThanQ4_0) {
  const std::vector<float> outliers = keys_with_outliers(64, 11), plain = normal(64 * 256, 1.0f, 12);
  const double q4_0 = round_trip_error(KvPrecision::Q4_0, outliers, 256);
  const double q4_h = round_trip_error(KvPrecision::Q4_H, outliers, 256);
  EXPECT_LT(q4_h, 0.5 * q4_0) << "Q4_0 " << q4_0 << ", Q4_H " << q4_h;
  EXPECT_LT(round_trip_error(KvPrecision::Q4_H, plain, 256), round_trip_error(KvPrecision::Q4_0, plain, 256));
}

TEST(KvRows, ConversionGoesThroughF32) {
  const std::vector<float> x = normal(256, 1.0f, 13);
  std::vector<uint8_t> q8(kv_bytes(KvPrecision::Q8_0, 256)), f16(kv_bytes(KvPrecision::F16, 256)),
      again(kv_bytes(KvPrecision::Q8_0, 256));
  store_kv_row(x.data(), q8.data(), 256, KvPrecision::Q8_0);
  convert_kv_row(q8.data(), KvPrecision::Q8_0, f16.data(), KvPrecision::F16, 256);
  convert_kv_row(f16.data(), KvPrecision::F16, again.data(), KvPrecision::Q8_0, 256);
  std::vector<float> a(256), b(256);
  load_kv_row(q8.data(), KvPrecision::Q8_0, a.data(), 256);
  load_kv_row(again.data(), KvPrecision::Q8_0, b.data(), 256);
  for (size_t i = 0; i < 256; ++i) EXPECT_NEAR(a[i], b[i], 0.02) << i;
}

TEST(KvPrecisionNames, ParseWhatTheyPrint) {
  for (KvPrecision p : {KvPrecision::F32, KvPrecision::F16, KvPrecision::Q8_0, KvPrecision::Q4_0, KvPrecision::Q4_H}) {
    EXPECT_EQ(parse_kv_precision(kv_precision_name(p)), p);
  }
  EXPECT_EQ(parse_kv_precision("Q8_0"), KvPrecision::Q8_0);
  EXPECT_FALSE(parse_kv_precision("q5_1").has_value());
  EXPECT_EQ(kv_bytes(KvPrecision::Q8_0, 64), 68u);
  EXPECT_EQ(kv_bytes(KvPrecision::Q4_H, 64), 36u);
  EXPECT_FALSE(kv_precision_fits(KvPrecision::Q4_0, 48));
  EXPECT_TRUE(kv_precision_fits(KvPrecision::F16, 48));
}

}  // namespace
}  // namespace frugal
