#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "frugal/error.h"
#include "frugal/quant.h"
#include "frugal/tensor_type.h"
#include "tensor/block_layouts.h"

namespace frugal {
namespace {

std::string message_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(QuantErrors, CountNotAMultipleOfTheBlockSize) {
  std::vector<float> f(512);
  std::vector<uint8_t> bytes(1024);
  EXPECT_THROW(dequantize_row(TensorType::Q4_0, bytes.data(), f.data(), 31), Error);
  EXPECT_THROW(dequantize_row(TensorType::Q4_K, bytes.data(), f.data(), 255), Error);
  EXPECT_THROW(quantize_row(TensorType::Q8_0, f.data(), bytes.data(), 48), Error);
  EXPECT_THROW(quantize_row(TensorType::Q6_K, f.data(), bytes.data(), 128), Error);
  EXPECT_THROW(dot_row(TensorType::Q5_K, bytes.data(), bytes.data(), 300), Error);
  EXPECT_THROW(dot_row(TensorType::Q8_0, bytes.data(), bytes.data(), 33), Error);
  // Not an UnsupportedError: the type is fine.
  const auto msg = message_of([&] { dequantize_row(TensorType::Q4_0, bytes.data(), f.data(), 31); });
  EXPECT_NE(msg.find("Q4_0"), std::string::npos) << msg;
  try {
    dequantize_row(TensorType::Q4_0, bytes.data(), f.data(), 31);
  } catch (const UnsupportedError&) {
    ADD_FAILURE() << "wrong error type";
  } catch (const Error&) {
  }
}

TEST(QuantErrors, ZeroElementsIsFine) {
  EXPECT_NO_THROW(dequantize_row(TensorType::Q4_K, nullptr, nullptr, 0));
  EXPECT_NO_THROW(quantize_row(TensorType::Q8_0, nullptr, nullptr, 0));
  EXPECT_EQ(dot_row(TensorType::Q6_K, nullptr, nullptr, 0), 0.0f);
}

TEST(QuantErrors, UnsupportedTypesNameTheType) {
  std::vector<float> f(64);
  std::vector<uint8_t> bytes(1024);
  for (auto type : {TensorType::I8, TensorType::I16, TensorType::I32, TensorType::I64, TensorType::F64}) {
    const std::string name(tensor_type_name(type));
    EXPECT_THROW(dequantize_row(type, bytes.data(), f.data(), 32), UnsupportedError) << name;
    EXPECT_THROW(quantize_row(type, f.data(), bytes.data(), 32), UnsupportedError) << name;
    EXPECT_THROW(dot_row(type, bytes.data(), bytes.data(), 32), UnsupportedError) << name;
    EXPECT_THROW(activation_type(type), UnsupportedError) << name;
    const auto msg = message_of([&] { dequantize_row(type, bytes.data(), f.data(), 32); });
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
  }
  const auto unknown = static_cast<TensorType>(99);
  EXPECT_THROW(dequantize_row(unknown, bytes.data(), f.data(), 32), UnsupportedError);
  EXPECT_NE(message_of([&] { quantize_row(unknown, f.data(), bytes.data(), 32); }).find("99"), std::string::npos);
}

TEST(QuantErrors, ActivationFormatsAreNotWeights) {
  std::vector<uint8_t> bytes(1024);
  EXPECT_THROW(activation_type(TensorType::Q8_K), UnsupportedError);
  EXPECT_THROW(activation_type(TensorType::Q8_1), UnsupportedError);
  EXPECT_THROW(dot_row(TensorType::Q8_K, bytes.data(), bytes.data(), 256), UnsupportedError);
}

// The internal block structs agree with the sizes the GGUF reader uses.
TEST(BlockLayouts, SizesMatchTensorTypeTraits) {
  EXPECT_EQ(sizeof(detail::BlockQ4_0), tensor_type_traits(TensorType::Q4_0).block_bytes);
  EXPECT_EQ(sizeof(detail::BlockQ4_1), tensor_type_traits(TensorType::Q4_1).block_bytes);
  EXPECT_EQ(sizeof(detail::BlockQ5_0), tensor_type_traits(TensorType::Q5_0).block_bytes);
  EXPECT_EQ(sizeof(detail::BlockQ5_1), tensor_type_traits(TensorType::Q5_1).block_bytes);
  EXPECT_EQ(sizeof(detail::BlockQ8_0), tensor_type_traits(TensorType::Q8_0).block_bytes);
  EXPECT_EQ(sizeof(detail::BlockQ8_1), tensor_type_traits(TensorType::Q8_1).block_bytes);
  EXPECT_EQ(sizeof(detail::BlockQ2_K), tensor_type_traits(TensorType::Q2_K).block_bytes);
  EXPECT_EQ(sizeof(detail::BlockQ3_K), tensor_type_traits(TensorType::Q3_K).block_bytes);
  EXPECT_EQ(sizeof(detail::BlockQ4_K), tensor_type_traits(TensorType::Q4_K).block_bytes);
  EXPECT_EQ(sizeof(detail::BlockQ5_K), tensor_type_traits(TensorType::Q5_K).block_bytes);
  EXPECT_EQ(sizeof(detail::BlockQ6_K), tensor_type_traits(TensorType::Q6_K).block_bytes);
  EXPECT_EQ(sizeof(detail::BlockQ8_K), tensor_type_traits(TensorType::Q8_K).block_bytes);
}

}  // namespace
}  // namespace frugal
