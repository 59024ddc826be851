// The AVX2 / AVX-512 kernels of the plain and legacy formats against the
// scalar table: dot tiles of many shapes (within 1e-5 of sum |w * a|, only
// float summation order may differ, with out_stride respected), and the Q8_0 /
// Q8_1 activation quantizers (bit-identical bytes).

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "frugal/quant.h"
#include "frugal/tensor_type.h"
#include "tensor/kernel_set.h"
#include "tensor/test_data.h"

namespace frugal {
namespace {

// Past 64 rows and 128 tokens: tiles larger than one chunk of the AVX-512
// packed prefill path (64 rows, 64 tokens at a time).
constexpr size_t kMaxRows = 80;
constexpr size_t kMaxTokens = 130;
constexpr float kSentinel = -12345.0f;

bool is_legacy_quant(TensorType type) {
  return type == TensorType::Q4_0 || type == TensorType::Q4_1 || type == TensorType::Q5_0 ||
         type == TensorType::Q5_1 || type == TensorType::Q8_0;
}

bool has_min(TensorType type) { return type == TensorType::Q4_1 || type == TensorType::Q5_1; }

// Gaussian values whose 32-element chunks have varied magnitudes: ordinary,
// large, small, and all zero.
std::vector<float> varied_values(size_t n, uint32_t seed) {
  std::vector<float> x = test::gaussian(n, seed);
  std::mt19937 rng(seed ^ 0x9e3779b9u);
  const float magnitudes[] = {1.0f, 1.0f, 1000.0f, 0.001f, 0.0f, 3.0f};
  for (size_t c = 0; c < n; c += 32) {
    const float m = magnitudes[rng() % 6];
    for (size_t i = c; i < c + 32 && i < n; ++i) x[i] *= m;
  }
  return x;
}

// A matrix of `count` rows stored `stride` bytes apart after a 1-byte offset
// (so nothing is aligned), with the values the rows stand for.
struct Rows {
  std::vector<uint8_t> storage;
  size_t stride = 0;
  std::vector<std::vector<double>> values;
  std::vector<std::vector<double>> block_offsets;  // m * s terms per block (Q4_1/Q5_1 with Q8_1)
  const uint8_t* data() const { return storage.data() + 1; }
  uint8_t* data() { return storage.data() + 1; }
  const uint8_t* row(size_t i) const { return data() + i * stride; }
};

Rows make_rows(TensorType type, size_t n, size_t count, size_t padding, uint32_t seed, bool random_blocks) {
  Rows rows;
  const size_t row_bytes = tensor_row_bytes(type, n);
  rows.stride = row_bytes + padding;
  rows.storage.assign(1 + rows.stride * count, 0xAB);
  std::vector<float> deq(n);
  std::mt19937 rng(seed);
  for (size_t r = 0; r < count; ++r) {
    uint8_t* dst = rows.data() + r * rows.stride;
    if (random_blocks && is_legacy_quant(type) && r % 2 == 1) {
      // Arbitrary quants (Q8_0 weights include -128) with sane scales.
      const auto bytes = test::random_bytes(row_bytes, seed + static_cast<uint32_t>(r));
      std::memcpy(dst, bytes.data(), row_bytes);
      const size_t block_bytes = row_bytes / (n / 32);
      std::normal_distribution<float> scale(0.0f, 0.05f);
      for (size_t b = 0; b < n / 32; ++b) {
        uint8_t* block = dst + b * block_bytes;
        const uint16_t d = f32_to_f16(scale(rng));
        std::memcpy(block, &d, 2);
        if (has_min(type)) {
          const uint16_t m = f32_to_f16(scale(rng) * 4);
          std::memcpy(block + 2, &m, 2);
        }
      }
    } else {
      const auto x = varied_values(n, seed * 7919u + static_cast<uint32_t>(r));
      quantize_row(type, x.data(), dst, n);
    }
    dequantize_row(type, dst, deq.data(), n);
    rows.values.emplace_back(deq.begin(), deq.end());
    if (has_min(type) || type == TensorType::Q8_1) {
      // Offset 2 of each block: m (Q4_1/Q5_1) or s (Q8_1).
      const size_t block_bytes = row_bytes / (n / 32);
      std::vector<double> offsets;
      for (size_t b = 0; b < n / 32; ++b) offsets.push_back(f16_to_f32(test::get_u16(rows.storage, 1 + r * rows.stride + b * block_bytes + 2)));
      rows.block_offsets.push_back(offsets);
    }
  }
  return rows;
}

// sum |w_i * a_i| (+ sum |m * s| of the blocks where the format has them).
double magnitude(const Rows& w, size_t r, const Rows& a, size_t t) {
  double sum = 0;
  const auto& wv = w.values[r];
  const auto& av = a.values[t];
  for (size_t i = 0; i < wv.size(); ++i) sum += std::fabs(wv[i] * av[i]);
  if (!w.block_offsets.empty()) {
    for (size_t b = 0; b < w.block_offsets[r].size(); ++b) {
      sum += std::fabs(w.block_offsets[r][b] * a.block_offsets[t][b]);
    }
  }
  return sum;
}

struct DotCase {
  Isa isa;
  TensorType type;
};

class LegacySimdDot : public testing::TestWithParam<DotCase> {};

TEST_P(LegacySimdDot, MatchesScalarOnAllShapes) {
  const auto [isa, type] = GetParam();
  if (!cpu_supports(isa)) GTEST_SKIP() << "CPU lacks " << isa_name(isa);
  const DotTileFn simd = kernel_set(isa).dot_tile[type_slot(type)];
  const DotTileFn scalar = kernel_set(Isa::Scalar).dot_tile[type_slot(type)];
  ASSERT_NE(simd, nullptr);
  ASSERT_NE(scalar, nullptr);
  const TensorType act_type = activation_type(type);
  for (size_t n : {32, 64, 96, 160, 224, 256, 4096, 1184, 40, 17}) {
    if (is_legacy_quant(type) && n % 32 != 0) continue;
    const Rows w = make_rows(type, n, kMaxRows, 7, static_cast<uint32_t>(n) + 1, true);
    const Rows a = make_rows(act_type, n, kMaxTokens, 5, static_cast<uint32_t>(n) + 1000, false);
    std::vector<double> mag(kMaxRows * kMaxTokens);
    for (size_t t = 0; t < kMaxTokens; ++t) {
      for (size_t r = 0; r < kMaxRows; ++r) mag[t * kMaxRows + r] = magnitude(w, r, a, t);
    }
    for (size_t rows : {1, 2, 3, 5, 17, 33, 48, 64, 80}) {
      for (size_t tokens : {1, 2, 3, 4, 5, 7, 8, 9, 10, 64, 130}) {
        const size_t out_stride = rows + 3;
        std::vector<float> expected(out_stride * tokens, kSentinel), actual(out_stride * tokens, kSentinel);
        scalar(w.data(), w.stride, a.data(), a.stride, n, rows, tokens, expected.data(), out_stride);
        simd(w.data(), w.stride, a.data(), a.stride, n, rows, tokens, actual.data(), out_stride);
        int failures = 0;
        for (size_t t = 0; t < tokens && failures < 5; ++t) {
          for (size_t r = 0; r < out_stride && failures < 5; ++r) {
            const float got = actual[t * out_stride + r];
            const float want = expected[t * out_stride + r];
            if (r >= rows) {
              EXPECT_EQ(got, kSentinel) << "wrote outside the tile at row " << r << " token " << t;
              failures += got != kSentinel;
              continue;
            }
            const double bound = 1e-5 * mag[t * kMaxRows + r];
            const double error = std::fabs(static_cast<double>(got) - want);
            const bool ok = error <= bound && std::isfinite(got);
            EXPECT_TRUE(ok) << tensor_type_name(type) << " " << isa_name(isa) << " n=" << n << " rows=" << rows
                            << " tokens=" << tokens << " r=" << r << " t=" << t << ": got " << got << ", scalar "
                            << want << ", bound " << bound;
            failures += !ok;
          }
        }
        if (failures) return;
      }
    }
  }
}

std::vector<DotCase> dot_cases() {
  std::vector<DotCase> cases;
  for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
    for (TensorType type : {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q8_0, TensorType::Q4_0,
                            TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1}) {
      cases.push_back({isa, type});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(PlainAndLegacy, LegacySimdDot, testing::ValuesIn(dot_cases()),
                         [](const testing::TestParamInfo<DotCase>& info) {
                           return std::string(isa_name(info.param.isa)) + "_" +
                                  std::string(tensor_type_name(info.param.type));
                         });

// ------------------------------------------------------------- quantizers

struct QuantizerCase {
  Isa isa;
  TensorType type;
};

class LegacySimdQuantizer : public testing::TestWithParam<QuantizerCase> {
 protected:
  void expect_identical(const std::vector<float>& x, const char* what) {
    const auto [isa, type] = GetParam();
    const QuantizeActivationFn simd = kernel_set(isa).quantize_activation[type_slot(type)];
    const QuantizeActivationFn scalar = kernel_set(Isa::Scalar).quantize_activation[type_slot(type)];
    const size_t bytes = tensor_row_bytes(type, x.size());
    // One spare byte each side, and an odd start, to catch stray writes.
    std::vector<uint8_t> want(bytes + 2, 0x5A), got(bytes + 2, 0x5A);
    scalar(x.data(), want.data() + 1, x.size());
    simd(x.data(), got.data() + 1, x.size());
    for (size_t i = 0; i < want.size(); ++i) {
      if (want[i] != got[i]) {
        ADD_FAILURE() << what << ": byte " << i - 1 << " (block " << (i - 1) / (bytes / (x.size() / 32))
                      << ") differs: scalar " << int{want[i]} << ", simd " << int{got[i]};
        return;
      }
    }
  }
};

TEST_P(LegacySimdQuantizer, RandomRowsAreBitIdentical) {
  if (!cpu_supports(GetParam().isa)) GTEST_SKIP() << "CPU lacks " << isa_name(GetParam().isa);
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    expect_identical(varied_values(32 * (seed % 7 + 1) * 9, seed), "varied row");
    expect_identical(test::gaussian(4096, seed + 100, 0.02f), "gaussian row");
  }
}

TEST_P(LegacySimdQuantizer, TiesRoundHalfToEven) {
  if (!cpu_supports(GetParam().isa)) GTEST_SKIP() << "CPU lacks " << isa_name(GetParam().isa);
  // amax = 127 * 2^k makes 127 / amax a power of two, so (j + 0.5) * 2^k
  // scales to an exact tie.
  std::vector<float> x;
  for (int k = -6; k <= 6; ++k) {
    const float unit = std::ldexp(1.0f, k);
    for (int j = 0; j < 32; ++j) {
      const float v = j == 5 ? 127.0f : static_cast<float>(j - 16) + 0.5f;
      x.push_back((j % 3 == 0 ? -v : v) * unit);
    }
    for (int j = 0; j < 32; ++j) x.push_back((j == 0 ? -127.0f : -63.5f + 4 * j) * unit);
  }
  expect_identical(x, "ties");
}

TEST_P(LegacySimdQuantizer, ZerosAndNonFiniteValues) {
  if (!cpu_supports(GetParam().isa)) GTEST_SKIP() << "CPU lacks " << isa_name(GetParam().isa);
  expect_identical(std::vector<float>(96, 0.0f), "zeros");
  std::vector<float> x = test::gaussian(32 * 6, 5);
  x[3] = std::numeric_limits<float>::quiet_NaN();                // NaN in a block
  x[32 + 7] = std::numeric_limits<float>::infinity();            // inf makes the scale 0
  x[64] = -std::numeric_limits<float>::infinity();               // -inf first
  x[96 + 31] = std::numeric_limits<float>::quiet_NaN();          // NaN last
  for (size_t i = 128; i < 160; ++i) x[i] = (i % 2 ? 1 : -1) * std::numeric_limits<float>::denorm_min() * (i % 5);
  for (size_t i = 160; i < 192; ++i) x[i] = -0.0f;
  expect_identical(x, "non-finite");
}

std::vector<QuantizerCase> quantizer_cases() {
  std::vector<QuantizerCase> cases;
  for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
    for (TensorType type : {TensorType::Q8_0, TensorType::Q8_1}) cases.push_back({isa, type});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Q8, LegacySimdQuantizer, testing::ValuesIn(quantizer_cases()),
                         [](const testing::TestParamInfo<QuantizerCase>& info) {
                           return std::string(isa_name(info.param.isa)) + "_" +
                                  std::string(tensor_type_name(info.param.type));
                         });

}  // namespace
}  // namespace frugal
