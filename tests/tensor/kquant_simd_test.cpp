// The AVX2 / AVX-512 K-quant kernels against the scalar level: dot tiles
// (Q2_K..Q6_K weights x Q8_K activations) over many shapes, and the Q8_K
// activation quantizer, which must produce the scalar bytes exactly.

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

constexpr size_t kMaxRows = 64;
constexpr size_t kMaxTokens = 64;

const TensorType kKTypes[] = {TensorType::Q2_K, TensorType::Q3_K, TensorType::Q4_K, TensorType::Q5_K,
                              TensorType::Q6_K};

// Byte offsets of the fp16 super-block scales (d, and dmin where present).
std::vector<size_t> scale_offsets(TensorType type) {
  switch (type) {
    case TensorType::Q2_K: return {80, 82};
    case TensorType::Q3_K: return {108};
    case TensorType::Q4_K: return {0, 2};
    case TensorType::Q5_K: return {0, 2};
    case TensorType::Q6_K: return {208};
    default: return {};
  }
}

size_t block_bytes(TensorType type) { return tensor_row_bytes(type, 256); }

// 64 weight rows and 64 activation rows with padded, odd strides (so loads are
// unaligned), the scalar tile of all of them and sum |w_i * a_i| per pair
// (with the mins apart, see below).
struct Problem {
  size_t n = 0;
  size_t weight_stride = 0, activation_stride = 0;
  std::vector<uint8_t> weights, activations;
  std::vector<float> reference;  // [t * kMaxRows + r]
  std::vector<double> magnitude;
};

Problem make_problem(TensorType type, size_t n, uint32_t seed) {
  Problem p;
  p.n = n;
  const size_t row_bytes = tensor_row_bytes(type, n);
  const size_t act_bytes = tensor_row_bytes(TensorType::Q8_K, n);
  p.weight_stride = row_bytes + 7;
  p.activation_stride = act_bytes + 3;
  p.weights.assign(p.weight_stride * kMaxRows, 0xA5);
  p.activations.assign(p.activation_stride * kMaxTokens, 0x5A);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(0.001f, 0.05f);
  const size_t blocks = n / 256;
  for (size_t r = 0; r < kMaxRows; ++r) {
    uint8_t* row = p.weights.data() + r * p.weight_stride;
    if (r % 8 == 3) {
      // Raw random bytes: every level / scale bit pattern, sane fp16 scales.
      const auto bytes = test::random_bytes(row_bytes, seed + static_cast<uint32_t>(r));
      std::memcpy(row, bytes.data(), row_bytes);
      for (size_t b = 0; b < blocks; ++b) {
        for (size_t offset : scale_offsets(type)) {
          const uint16_t h = f32_to_f16(uniform(rng));
          std::memcpy(row + b * block_bytes(type) + offset, &h, 2);
        }
      }
      continue;
    }
    auto x = test::gaussian(n, seed * 31 + static_cast<uint32_t>(r), 0.5f + static_cast<float>(r % 5));
    if (r % 8 == 5) {
      for (size_t i = 0; i < 256; ++i) x[i] = 0.0f;                             // a zero block
      if (blocks > 1) for (size_t i = 256; i < 512; ++i) x[i] *= 1000.0f;  // an extreme one
    }
    if (r % 8 == 6) {
      for (size_t i = 0; i < n; ++i) x[i] = std::fabs(x[i]) + 3.0f;  // all positive, large offset
    }
    quantize_row(type, x.data(), row, n);
  }
  for (size_t t = 0; t < kMaxTokens; ++t) {
    auto x = test::gaussian(n, seed * 17 + 1000 + static_cast<uint32_t>(t), 1.0f + static_cast<float>(t % 3));
    if (t % 16 == 9) {
      for (auto& v : x) v *= 1e-3f;
      x[n / 2] = -50.0f;  // one spike: most levels 0
    }
    if (t % 16 == 13) {
      for (size_t i = 0; i < 256; ++i) x[i] = 0.0f;  // a zero block
    }
    quantize_row(TensorType::Q8_K, x.data(), p.activations.data() + t * p.activation_stride, n);
  }
  p.reference.assign(kMaxRows * kMaxTokens, 0.0f);
  kernel_set(Isa::Scalar).dot_tile[type_slot(type)](p.weights.data(), p.weight_stride, p.activations.data(),
                                                    p.activation_stride, n, kMaxRows, kMaxTokens,
                                                    p.reference.data(), kMaxRows);
  // Formats with mins (w = d * scale * q - dmin * min) are computed by the
  // scalar reference as two float terms per super-block, each rounded: its own
  // error is bounded by their magnitudes, not by |w * a|. The bound uses
  // |d * scale * q| + |dmin * min| per weight for them (dequantized with dmin
  // zeroed, and the difference).
  const auto offsets = scale_offsets(type);
  const bool has_min = offsets.size() == 2;
  std::vector<float> w(n * kMaxRows), w_no_min(n * kMaxRows), a(n * kMaxTokens);
  for (size_t r = 0; r < kMaxRows; ++r) {
    const uint8_t* row = p.weights.data() + r * p.weight_stride;
    dequantize_row(type, row, &w[r * n], n);
    if (has_min) {
      std::vector<uint8_t> copy(row, row + row_bytes);
      for (size_t b = 0; b < blocks; ++b) std::memset(copy.data() + b * block_bytes(type) + offsets[1], 0, 2);
      dequantize_row(type, copy.data(), &w_no_min[r * n], n);
    }
  }
  for (size_t i = 0; i < w.size(); ++i) {
    const float scaled = has_min ? w_no_min[i] : w[i];
    w[i] = std::fabs(scaled) + std::fabs(scaled - w[i]);
  }
  for (size_t t = 0; t < kMaxTokens; ++t) {
    dequantize_row(TensorType::Q8_K, p.activations.data() + t * p.activation_stride, &a[t * n], n);
  }
  p.magnitude.assign(kMaxRows * kMaxTokens, 0.0);
  for (size_t t = 0; t < kMaxTokens; ++t) {
    for (size_t r = 0; r < kMaxRows; ++r) {
      double sum = 0.0;
      for (size_t i = 0; i < n; ++i) sum += static_cast<double>(w[r * n + i]) * std::fabs(a[t * n + i]);
      p.magnitude[t * kMaxRows + r] = sum;
    }
  }
  return p;
}

class KQuantSimd : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (!cpu_supports(GetParam())) GTEST_SKIP() << "CPU lacks " << isa_name(GetParam());
  }
};

TEST_P(KQuantSimd, DotTileMatchesScalar) {
  const KernelSet& kernels = kernel_set(GetParam());
  const float sentinel = -12345.5f;
  uint32_t seed = 1;
  for (TensorType type : kKTypes) {
    const DotTileFn tile = kernels.dot_tile[type_slot(type)];
    ASSERT_NE(tile, kernel_set(Isa::Scalar).dot_tile[type_slot(type)])
        << tensor_type_name(type) << " has no " << isa_name(GetParam()) << " kernel";
    for (size_t n : {256, 512, 2304, 4096}) {
      const Problem p = make_problem(type, n, seed++);
      for (size_t rows : {1, 2, 3, 5, 17, 64}) {
        for (size_t tokens : {1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 64}) {  // every group remainder
          const size_t out_stride = rows + 3;
          std::vector<float> out(out_stride * tokens, sentinel);
          tile(p.weights.data(), p.weight_stride, p.activations.data(), p.activation_stride, n, rows, tokens,
               out.data(), out_stride);
          int failures = 0;
          for (size_t t = 0; t < tokens && failures < 5; ++t) {
            for (size_t r = 0; r < out_stride && failures < 5; ++r) {
              const float got = out[t * out_stride + r];
              const std::string where = std::string(tensor_type_name(type)) + " n=" + std::to_string(n) +
                                        " rows=" + std::to_string(rows) + " tokens=" + std::to_string(tokens) +
                                        " r=" + std::to_string(r) + " t=" + std::to_string(t);
              if (r >= rows) {
                if (got != sentinel) {
                  ADD_FAILURE() << "wrote past the rows: " << where;
                  ++failures;
                }
                continue;
              }
              const float want = p.reference[t * kMaxRows + r];
              const double bound = 1e-5 * p.magnitude[t * kMaxRows + r] + 1e-30;
              if (!(std::fabs(static_cast<double>(got) - want) <= bound)) {
                ADD_FAILURE() << where << ": got " << got << ", scalar " << want << ", bound " << bound;
                ++failures;
              }
            }
          }
          if (failures > 0) return;
        }
      }
    }
  }
}

// ------------------------------------------------------------- Q8_K quantizer

void expect_quantizer_exact(const KernelSet& kernels, const std::vector<float>& x, const std::string& what) {
  const size_t bytes = tensor_row_bytes(TensorType::Q8_K, x.size());
  std::vector<uint8_t> want(bytes, 0xEE), got(bytes, 0x11);
  kernel_set(Isa::Scalar).quantize_activation[type_slot(TensorType::Q8_K)](x.data(), want.data(), x.size());
  kernels.quantize_activation[type_slot(TensorType::Q8_K)](x.data(), got.data(), x.size());
  for (size_t i = 0; i < bytes; ++i) {
    if (want[i] != got[i]) {
      ADD_FAILURE() << what << ": byte " << i << " (block " << i / 292 << ", offset " << i % 292 << ") is "
                    << int(got[i]) << ", scalar " << int(want[i]);
      return;
    }
  }
}

TEST_P(KQuantSimd, Q8KQuantizerIsBitIdentical) {
  const KernelSet& kernels = kernel_set(GetParam());
  ASSERT_NE(kernels.quantize_activation[type_slot(TensorType::Q8_K)],
            kernel_set(Isa::Scalar).quantize_activation[type_slot(TensorType::Q8_K)]);
  uint32_t seed = 100;
  for (size_t n : {256, 512, 4096}) {
    for (float stddev : {1e-6f, 0.1f, 1.0f, 300.0f}) {
      expect_quantizer_exact(kernels, test::gaussian(n, seed++, stddev), "gaussian n=" + std::to_string(n));
    }
  }
  // Ties: max magnitude 127 makes iscale -1 or 1, so halves hit round-half-even.
  for (float max : {127.0f, -127.0f}) {
    std::vector<float> x(512);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>(i % 254) - 127) / 2.0f;
    x[37] = max;
    x[300] = max;
    expect_quantizer_exact(kernels, x, "halves, max " + std::to_string(max));
  }
  // Zeros: a whole zero row, a zero block between others, negative zeros.
  expect_quantizer_exact(kernels, std::vector<float>(512, 0.0f), "zeros");
  {
    auto x = test::gaussian(768, 7);
    for (size_t i = 256; i < 512; ++i) x[i] = (i % 2) ? -0.0f : 0.0f;
    expect_quantizer_exact(kernels, x, "zero middle block");
  }
  // Largest magnitude negative; two equal magnitudes of opposite sign, both
  // orders (the first one sets the sign), placed in different lanes.
  for (size_t first : {0, 5, 100, 255}) {
    for (float sign : {1.0f, -1.0f}) {
      auto x = test::gaussian(256, 40 + static_cast<uint32_t>(first));
      x[first] = 9.0f * sign;
      x[(first + 77) % 256] = -9.0f * sign;
      expect_quantizer_exact(kernels, x, "opposite tie at " + std::to_string(first));
      auto y = test::gaussian(256, 50 + static_cast<uint32_t>(first));
      y[first] = -20.0f * sign;
      expect_quantizer_exact(kernels, y, "single max at " + std::to_string(first));
    }
  }
  // Non-finite values: NaN is skipped by the max; an infinite max.
  {
    auto x = test::gaussian(512, 77);
    x[10] = std::numeric_limits<float>::quiet_NaN();
    x[300] = std::numeric_limits<float>::infinity();
    x[301] = -std::numeric_limits<float>::quiet_NaN();
    expect_quantizer_exact(kernels, x, "nan and inf");
  }
  // Values just around the rounding points of the scaled levels.
  {
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> level(-127, 127);
    std::vector<float> x(4096);
    for (auto& v : x) v = (static_cast<float>(level(rng)) + 0.5f) * 0.0078125f * (1.0f + 1e-7f * static_cast<float>(level(rng)));
    expect_quantizer_exact(kernels, x, "near halves");
  }
}

INSTANTIATE_TEST_SUITE_P(Levels, KQuantSimd, ::testing::Values(Isa::Avx2, Isa::Avx512),
                         [](const ::testing::TestParamInfo<Isa>& info) { return std::string(isa_name(info.param)); });

}  // namespace
}  // namespace frugal
