// Element order against files written by llama.cpp: the shared mini-llama
// models are one F32 model quantized four ways, so the same tensor
// dequantized from each file must agree up to quantization error. A wrong
// element order inside a block would make them uncorrelated (relative
// difference ~1.4).

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "frugal/gguf.h"
#include "frugal/quant.h"
#include "frugal/tensor_type.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

std::vector<float> dequantize_tensor(const GgufTensor& tensor) {
  std::vector<float> values(static_cast<size_t>(tensor.element_count()));
  const size_t row = static_cast<size_t>(tensor.shape[0]);
  const size_t row_bytes = tensor_row_bytes(tensor.type, row);
  for (int64_t r = 0; r < tensor.rows(); ++r) {
    dequantize_row(tensor.type, tensor.data + r * row_bytes, values.data() + r * row, row);
  }
  return values;
}

double relative_rms_difference(const std::vector<float>& reference, const std::vector<float>& other) {
  double diff2 = 0, ref2 = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    diff2 += (static_cast<double>(reference[i]) - other[i]) * (static_cast<double>(reference[i]) - other[i]);
    ref2 += static_cast<double>(reference[i]) * reference[i];
  }
  return std::sqrt(diff2 / ref2);
}

// Loose per-format bounds: a few times the round-trip error, far below the
// ~1.4 of a scrambled order.
double bound_for(TensorType type) {
  switch (type) {
    case TensorType::F32: return 1e-6;
    case TensorType::Q8_0: return 0.02;
    case TensorType::Q6_K: return 0.05;
    case TensorType::Q5_0:
    case TensorType::Q5_1:
    case TensorType::Q5_K: return 0.1;
    case TensorType::Q4_0:
    case TensorType::Q4_1:
    case TensorType::Q4_K: return 0.2;
    default: return 0.5;
  }
}

TEST(RealFiles, SameTensorAgreesAcrossQuantizations) {
  const auto reference_path = test::shared_path("models/mini-llama-spm-q8_0.gguf");
  if (!std::filesystem::exists(reference_path)) GTEST_SKIP() << "shared models not available";
  const auto reference = GgufFile::open(reference_path);
  std::map<TensorType, int> checked;
  for (const char* name : {"mini-llama-spm-q4_0.gguf", "mini-llama-spm-q4_k_m.gguf", "mini-llama-spm-q6_k.gguf"}) {
    const auto other = GgufFile::open(test::shared_path(std::string("models/") + name));
    for (const auto& tensor : other.tensors()) {
      const GgufTensor* ref_tensor = reference.find_tensor(tensor.name);
      ASSERT_NE(ref_tensor, nullptr) << tensor.name;
      if (ref_tensor->type != TensorType::Q8_0) continue;  // norms are F32 everywhere
      const auto expected = dequantize_tensor(*ref_tensor);
      const auto got = dequantize_tensor(tensor);
      const double rel = relative_rms_difference(expected, got);
      EXPECT_LT(rel, bound_for(tensor.type)) << name << " " << tensor.name << " " << tensor_type_name(tensor.type);
      ++checked[tensor.type];
    }
  }
  // The files cover these formats; make sure each was really compared.
  for (auto type : {TensorType::Q4_0, TensorType::Q4_K, TensorType::Q6_K}) {
    EXPECT_GT(checked[type], 0) << tensor_type_name(type);
  }
}

// dot_row on real rows agrees with the dequantized dot.
TEST(RealFiles, DotRowOnRealRows) {
  const auto path = test::shared_path("models/mini-llama-spm-q4_k_m.gguf");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "shared models not available";
  const auto file = GgufFile::open(path);
  std::map<TensorType, int> checked;
  for (const auto& tensor : file.tensors()) {
    if (checked[tensor.type] >= 2 || tensor.rows() < 2) continue;
    const size_t n = static_cast<size_t>(tensor.shape[0]);
    const TensorType act_type = activation_type(tensor.type);
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) + 0.1f;
    std::vector<uint8_t> act(tensor_row_bytes(act_type, n));
    quantize_row(act_type, x.data(), act.data(), n);
    std::vector<float> a(n), w(n);
    dequantize_row(act_type, act.data(), a.data(), n);
    const size_t row_bytes = tensor_row_bytes(tensor.type, n);
    for (int64_t r = 0; r < 2; ++r) {
      const uint8_t* row = tensor.data + r * row_bytes;
      dequantize_row(tensor.type, row, w.data(), n);
      double expected = 0, magnitude = 0;
      for (size_t i = 0; i < n; ++i) {
        expected += static_cast<double>(w[i]) * a[i];
        magnitude += std::fabs(static_cast<double>(w[i]) * a[i]);
      }
      // Q8_1's fp16 block sum is not modelled here, hence the looser bound.
      EXPECT_NEAR(dot_row(tensor.type, row, act.data(), n), expected, 2e-3 * magnitude)
          << tensor.name << " " << tensor_type_name(tensor.type);
    }
    ++checked[tensor.type];
  }
  EXPECT_GT(checked[TensorType::Q4_K], 0);
  EXPECT_GT(checked[TensorType::Q6_K], 0);
}

}  // namespace
}  // namespace frugal
