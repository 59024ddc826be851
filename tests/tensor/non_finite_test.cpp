// Broken inputs (NaN, infinities) must not reach undefined float-to-int
// conversions in the quantizers; the sanitizer build turns those into
// failures. The 4- and 5-bit formats quantize non-finite values as 0.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "frugal/quant.h"

namespace frugal {
namespace {

TEST(NonFiniteInput, LegacyQuantizersTreatItAsZero) {
  for (TensorType type : {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0,
                          TensorType::Q8_1}) {
    std::vector<float> values(64);
    for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 7) - 3.0f;
    values[3] = std::numeric_limits<float>::quiet_NaN();
    values[40] = std::numeric_limits<float>::infinity();
    std::vector<uint8_t> packed(tensor_row_bytes(type, values.size()));
    quantize_row(type, values.data(), packed.data(), values.size());
    if (type == TensorType::Q8_1) continue;  // activation-only: no dequantized check
    std::vector<float> back(values.size());
    dequantize_row(type, packed.data(), back.data(), back.size());
    // Q8_0 (the activation format too) keeps an infinite block's scale, so
    // that block comes back as NaN; only the NaN block is checked there.
    const size_t checked = type == TensorType::Q8_0 ? 32 : back.size();
    for (size_t i = 0; i < checked; ++i) {
      ASSERT_TRUE(std::isfinite(back[i])) << tensor_type_name(type) << " " << i;
      if (i == 3 || i == 40) continue;
      EXPECT_NEAR(back[i], values[i], 0.5f) << tensor_type_name(type) << " " << i;
    }
    EXPECT_NEAR(back[3], 0.0f, 0.5f) << tensor_type_name(type);
  }
}

}  // namespace
}  // namespace frugal
