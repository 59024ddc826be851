// dot_row against dequantize-both-then-dot for every weight format, with
// activations quantized to activation_type(weight), plus hand-computed dots.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "frugal/quant.h"
#include "frugal/tensor_type.h"
#include "tensor/test_data.h"

namespace frugal {
namespace {

std::vector<uint8_t> quantize(TensorType type, const std::vector<float>& x) {
  std::vector<uint8_t> bytes(tensor_row_bytes(type, x.size()));
  quantize_row(type, x.data(), bytes.data(), x.size());
  return bytes;
}

std::vector<float> dequantize(TensorType type, const std::vector<uint8_t>& bytes, size_t n) {
  std::vector<float> y(n);
  dequantize_row(type, bytes.data(), y.data(), n);
  return y;
}

TEST(ActivationType, MatchesGgmlPairing) {
  EXPECT_EQ(activation_type(TensorType::F32), TensorType::F32);
  EXPECT_EQ(activation_type(TensorType::F16), TensorType::F16);
  EXPECT_EQ(activation_type(TensorType::BF16), TensorType::BF16);
  EXPECT_EQ(activation_type(TensorType::Q4_0), TensorType::Q8_0);
  EXPECT_EQ(activation_type(TensorType::Q5_0), TensorType::Q8_0);
  EXPECT_EQ(activation_type(TensorType::Q8_0), TensorType::Q8_0);
  EXPECT_EQ(activation_type(TensorType::Q4_1), TensorType::Q8_1);
  EXPECT_EQ(activation_type(TensorType::Q5_1), TensorType::Q8_1);
  for (auto type : {TensorType::Q2_K, TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K}) {
    EXPECT_EQ(activation_type(type), TensorType::Q8_K) << tensor_type_name(type);
  }
}

class DotRow : public testing::TestWithParam<TensorType> {};

std::string type_param_name(const testing::TestParamInfo<TensorType>& info) {
  return std::string(tensor_type_name(info.param));
}

void check_dot_matches_dequantized(TensorType weight_type, const std::vector<float>& w, const std::vector<float>& x) {
  const size_t n = w.size();
  const TensorType act_type = activation_type(weight_type);
  const auto w_bytes = quantize(weight_type, w);
  const auto a_bytes = quantize(act_type, x);
  const auto w_deq = dequantize(weight_type, w_bytes, n);
  const auto a_deq = dequantize(act_type, a_bytes, n);
  double expected = 0, magnitude = 0;
  for (size_t i = 0; i < n; ++i) {
    expected += static_cast<double>(w_deq[i]) * a_deq[i];
    magnitude += std::fabs(static_cast<double>(w_deq[i]) * a_deq[i]);
  }
  if (act_type == TensorType::Q8_1) {
    // Q4_1/Q5_1 apply their offset m through the activation block's stored
    // s (fp16 of d * sum(q), d unrounded) rather than through the
    // dequantized activations: sum(w*a) = sum((w - m)*a) + m*s.
    const size_t w_block_bytes = tensor_type_traits(weight_type).block_bytes;
    for (size_t b = 0; b < n / 32; ++b) {
      const double m = f16_to_f32(test::get_u16(w_bytes, w_block_bytes * b + 2));
      const double s = f16_to_f32(test::get_u16(a_bytes, 36 * b + 2));
      double a_sum = 0;
      for (size_t i = 32 * b; i < 32 * b + 32; ++i) a_sum += a_deq[i];
      expected += m * (s - a_sum);
    }
  }
  const float got = dot_row(weight_type, w_bytes.data(), a_bytes.data(), n);
  EXPECT_NEAR(got, expected, 2e-5 * magnitude + 1e-30) << "magnitude " << magnitude;

  // And it approximates the exact dot of the unquantized data.
  double exact = 0, exact_magnitude = 0;
  for (size_t i = 0; i < n; ++i) {
    exact += static_cast<double>(w[i]) * x[i];
    exact_magnitude += std::fabs(static_cast<double>(w[i]) * x[i]);
  }
  EXPECT_NEAR(got, exact, 0.1 * exact_magnitude);
}

TEST_P(DotRow, MatchesDequantizedDot) {
  const size_t n = 2048;
  check_dot_matches_dequantized(GetParam(), test::gaussian(n, 42), test::gaussian(n, 43, 3.0f));
}

TEST_P(DotRow, MatchesDequantizedDotWithOffsetData) {
  // Shifted data exercises the min / offset terms (Q4_1, Q5_1, K mins, bsums).
  auto w = test::gaussian(1024, 7);
  auto x = test::gaussian(1024, 8);
  for (auto& v : w) v += 0.7f;
  for (auto& v : x) v = std::fabs(v) + 0.2f;
  check_dot_matches_dequantized(GetParam(), w, x);
}

TEST_P(DotRow, SingleBlock) {
  const size_t n = tensor_type_traits(GetParam()).block_elements == 1 ? 16 : tensor_type_traits(GetParam()).block_elements;
  check_dot_matches_dequantized(GetParam(), test::gaussian(n, 1), test::gaussian(n, 2));
}

INSTANTIATE_TEST_SUITE_P(AllWeightFormats, DotRow,
                         testing::Values(TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q4_0,
                                         TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0,
                                         TensorType::Q2_K, TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K,
                                         TensorType::Q6_K),
                         type_param_name);

TEST(DotRowKnown, Q8_0TimesQ8_0) {
  std::vector<uint8_t> w(34), a(34);
  test::put_u16(w, 0, test::kHalfHalf);     // 0.5
  test::put_u16(a, 0, test::kHalfQuarter);  // 0.25
  for (int j = 0; j < 32; ++j) {
    w[2 + j] = 2;
    a[2 + j] = 4;
  }
  // 32 * (0.5 * 2) * (0.25 * 4) = 32
  EXPECT_EQ(dot_row(TensorType::Q8_0, w.data(), a.data(), 32), 32.0f);
}

TEST(DotRowKnown, Q4_1UsesTheActivationSum) {
  // Weights: d = 1, m = -1, every nibble 3 -> every weight is 2.
  // Activations: d = 0.5, every quant 2 -> every activation is 1; s = 32.
  std::vector<uint8_t> w(20), a(36);
  test::put_u16(w, 0, test::kHalfOne);
  test::put_u16(w, 2, test::kHalfMinusOne);
  for (int j = 0; j < 16; ++j) w[4 + j] = 0x33;
  test::put_u16(a, 0, test::kHalfHalf);
  test::put_u16(a, 2, 0x5000);  // 32.0
  for (int j = 0; j < 32; ++j) a[4 + j] = 2;
  EXPECT_EQ(dot_row(TensorType::Q4_1, w.data(), a.data(), 32), 64.0f);
}

TEST(DotRowKnown, Q4_KWithMins) {
  // d = 1, dmin = 0.5, every sub-block scale 2 and min 4: weight = 2*q - 2.
  // Every nibble 3 -> every weight is 4. Activations: d = 0.25, quants 4 -> 1,
  // bsums 64. Dot = 256 * 4 = 1024.
  std::vector<uint8_t> w(144), a(292);
  test::put_u16(w, 0, test::kHalfOne);
  test::put_u16(w, 2, test::kHalfHalf);
  for (int j = 0; j < 4; ++j) {
    w[4 + j] = 2;      // scales 0-3
    w[4 + 4 + j] = 4;  // mins 0-3
    w[4 + 8 + j] = 2 | (4 << 4);  // scales and mins 4-7
  }
  for (int j = 0; j < 128; ++j) w[16 + j] = 0x33;
  test::put_f32(a, 0, 0.25f);
  for (int j = 0; j < 256; ++j) a[4 + j] = 4;
  for (int g = 0; g < 16; ++g) test::put_u16(a, 260 + 2 * g, 64);
  EXPECT_EQ(dot_row(TensorType::Q4_K, w.data(), a.data(), 256), 1024.0f);
}

TEST(DotRowKnown, F16ProductsAreOfHalfValues) {
  std::vector<uint8_t> w(4), a(4);
  test::put_u16(w, 0, 0x3C00);  // 1
  test::put_u16(w, 2, 0xC000);  // -2
  test::put_u16(a, 0, 0x4200);  // 3
  test::put_u16(a, 2, 0x3800);  // 0.5
  EXPECT_EQ(dot_row(TensorType::F16, w.data(), a.data(), 2), 2.0f);
  test::put_u16(w, 0, 0x3F80);  // bf16 1
  test::put_u16(w, 2, 0xC000);  // bf16 -2
  test::put_u16(a, 0, 0x4040);  // bf16 3
  test::put_u16(a, 2, 0x3F00);  // bf16 0.5
  EXPECT_EQ(dot_row(TensorType::BF16, w.data(), a.data(), 2), 2.0f);
}

TEST(DotRowKnown, F32) {
  const std::vector<float> w = {1.5f, -2.0f, 4.0f}, x = {2.0f, 0.25f, -1.0f};
  EXPECT_EQ(dot_row(TensorType::F32, w.data(), x.data(), 3), -1.5f);
}

}  // namespace
}  // namespace frugal
