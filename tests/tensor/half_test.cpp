#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "frugal/quant.h"

namespace frugal {
namespace {

TEST(F16, DecodesKnownBitPatterns) {
  EXPECT_EQ(f16_to_f32(0x3C00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xC000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x3555), 0.333251953125f);
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal, 5.96e-8
  EXPECT_NEAR(f16_to_f32(0x0001), 5.96e-8f, 0.01e-8f);
  EXPECT_EQ(f16_to_f32(0x03FF), 1023 * std::ldexp(1.0f, -24));  // largest subnormal
  EXPECT_EQ(f16_to_f32(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x0000), 0.0f);
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
  EXPECT_EQ(f16_to_f32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16_to_f32(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7E00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7C01)));  // signalling NaN stays NaN
  EXPECT_TRUE(std::isnan(f16_to_f32(0xFE00)));
}

TEST(F16, EncodesKnownValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xC000);
  EXPECT_EQ(f32_to_f16(0.5f), 0x3800);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(0.0f), 0x0000);
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14)), 0x0400);
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(f32_to_f16(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7C00);  // overflow
  EXPECT_EQ(f32_to_f16(-1e6f), 0xFC00);
  EXPECT_EQ(f32_to_f16(1e-9f), 0x0000);  // underflow
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::denorm_min()), 0x0000);
}

TEST(F16, NanStaysNan) {
  for (uint32_t bits : {0x7FC00000u, 0x7F800001u, 0xFFC00000u, 0x7FBFFFFFu, 0x7F802000u}) {
    const uint16_t h = f32_to_f16(std::bit_cast<float>(bits));
    EXPECT_EQ(h & 0x7C00, 0x7C00) << std::hex << bits;
    EXPECT_NE(h & 0x03FF, 0) << std::hex << bits;
    EXPECT_EQ(h & 0x8000, (bits >> 16) & 0x8000) << std::hex << bits;
  }
}

TEST(F16, RoundsTiesToEven) {
  const float ulp_at_one = std::ldexp(1.0f, -10);
  EXPECT_EQ(f32_to_f16(1.0f + ulp_at_one / 2), 0x3C00);         // tie, down to even
  EXPECT_EQ(f32_to_f16(1.0f + 3 * ulp_at_one / 2), 0x3C02);     // tie, up to even
  EXPECT_EQ(f32_to_f16(1.0f + ulp_at_one / 2 + 1e-6f), 0x3C01);  // just above the tie
  EXPECT_EQ(f32_to_f16(1.0f + ulp_at_one / 2 - 1e-7f), 0x3C00);
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7BFF);  // below the tie with 65536
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);  // tie: even is 65536 = infinity
  // Subnormals count units of 2^-24.
  const float unit = std::ldexp(1.0f, -24);
  EXPECT_EQ(f32_to_f16(0.5f * unit), 0x0000);  // tie, down to 0
  EXPECT_EQ(f32_to_f16(0.5001f * unit), 0x0001);
  EXPECT_EQ(f32_to_f16(1.5f * unit), 0x0002);  // tie, up to 2
  EXPECT_EQ(f32_to_f16(2.5f * unit), 0x0002);  // tie, down to 2
  EXPECT_EQ(f32_to_f16(1023.5f * unit), 0x0400);  // tie, rounds up into the normals
  EXPECT_EQ(f32_to_f16(-1.5f * unit), 0x8002);
}

TEST(F16, EveryFiniteHalfRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    if ((h & 0x7C00) == 0x7C00 && (h & 0x03FF) != 0) continue;  // NaN payloads may change
    ASSERT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

// f32_to_f16 picks the nearest representable half (checked against both
// neighbours), for floats spread over the whole half range.
TEST(F16, EncodesToNearestHalf) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  std::uniform_int_distribution<int> exponent(-26, 14);
  for (int i = 0; i < 200000; ++i) {
    const float f = std::ldexp(mantissa(rng), exponent(rng));
    const uint16_t h = f32_to_f16(f);
    ASSERT_LT(h, 0x7C00) << f;
    const double err = std::fabs(static_cast<double>(f) - f16_to_f32(h));
    if (h > 0) {
      ASSERT_LE(err, std::fabs(static_cast<double>(f) - f16_to_f32(h - 1))) << f;
    }
    if (h < 0x7BFF) {
      ASSERT_LE(err, std::fabs(static_cast<double>(f) - f16_to_f32(h + 1))) << f;
    }
  }
}

TEST(BF16, KnownValues) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xC000);
  EXPECT_EQ(bf16_to_f32(0x4049), 3.140625f);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(bf16_to_f32(0xFF80), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(bf16_to_f32(0x0001), std::bit_cast<float>(0x00010000u));  // subnormal
  EXPECT_TRUE(std::isnan(bf16_to_f32(0x7FC0)));
}

TEST(BF16, RoundsTiesToEven) {
  const float ulp_at_one = std::ldexp(1.0f, -7);
  EXPECT_EQ(f32_to_bf16(1.0f + ulp_at_one / 2), 0x3F80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * ulp_at_one / 2), 0x3F82);
  EXPECT_EQ(f32_to_bf16(1.0f + ulp_at_one / 2 + 1e-5f), 0x3F81);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x7F7FFFFFu)), 0x7F80);  // largest float rounds to inf
}

TEST(BF16, NanStaysNan) {
  // Plain rounding would turn these into infinity or another value.
  for (uint32_t bits : {0x7F800001u, 0x7FFFFFFFu, 0xFF800001u, 0x7FC00000u}) {
    const uint16_t h = f32_to_bf16(std::bit_cast<float>(bits));
    EXPECT_TRUE(std::isnan(bf16_to_f32(h))) << std::hex << bits;
  }
}

TEST(BF16, EveryFiniteValueRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    if ((h & 0x7F80) == 0x7F80 && (h & 0x007F) != 0) continue;
    ASSERT_EQ(f32_to_bf16(bf16_to_f32(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

}  // namespace
}  // namespace frugal
