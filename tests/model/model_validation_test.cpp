// Files that are well-formed GGUF but describe an impossible or broken model
// must be rejected at load with a message naming the problem.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "frugal/error.h"
#include "frugal/model.h"
#include "frugal/quant.h"
#include "support/model_builder.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

class ModelValidation : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("validation");
    test::write_random_model({}, dir_ / "good.gguf");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Loads a copy of the good model with one metadata key replaced and
  // returns the error message ("" if it loaded).
  std::string load_with(const std::string& key, GgufValue value) {
    test::rewrite_gguf(dir_ / "good.gguf", dir_ / "edited.gguf", [&](test::GgufEdit& e) {
      for (auto& [k, v] : e.metadata) {
        if (k == key) v = value;
      }
      e.metadata.emplace_back(key, value);  // the writer keeps the last value of a key
    });
    try {
      Model::load(dir_ / "edited.gguf");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  std::filesystem::path dir_;
};

TEST_F(ModelValidation, NonFiniteOrZeroSettings) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(load_with("llama.attention.layer_norm_rms_epsilon", GgufValue::f32(nan)).find("rms epsilon is nan"),
            std::string::npos);
  EXPECT_NE(load_with("llama.rope.freq_base", GgufValue::f32(0)).find("rope freq_base is 0"), std::string::npos);
  EXPECT_NE(load_with("llama.rope.freq_base", GgufValue::f32(INFINITY)).find("positive finite"), std::string::npos);
}

TEST_F(ModelValidation, AbsurdDimensionsFailBeforeAllocating) {
  EXPECT_NE(load_with("llama.block_count", GgufValue::u32(1000000000)).find("block_count is 1000000000"),
            std::string::npos);
  EXPECT_NE(load_with("llama.block_count", GgufValue::u32(500)).find("do not fit the file"), std::string::npos);
  EXPECT_NE(load_with("llama.attention.key_length", GgufValue::u64(uint64_t{1} << 40)).find("key_length"),
            std::string::npos);
  EXPECT_NE(load_with("llama.attention.head_count", GgufValue::u32(0)).find("must be positive"), std::string::npos);
  EXPECT_NE(load_with("llama.attention.head_count_kv", GgufValue::u32(3)).find("not a multiple"), std::string::npos);
  EXPECT_NE(load_with("llama.rope.dimension_count", GgufValue::u32(7)).find("rope dimension count 7"),
            std::string::npos);
}

TEST_F(ModelValidation, ScalingWithoutItsParameters) {
  test::rewrite_gguf(dir_ / "good.gguf", dir_ / "edited.gguf", [](test::GgufEdit& e) {
    e.metadata.emplace_back("llama.rope.scaling.type", GgufValue::string("llama3"));
    e.metadata.emplace_back("llama.rope.scaling.low_freq_factor", GgufValue::f32(4));
    e.metadata.emplace_back("llama.rope.scaling.high_freq_factor", GgufValue::f32(4));
  });
  EXPECT_THROW(Model::load(dir_ / "edited.gguf"), FormatError);
  EXPECT_NE(load_with("llama.rope.scaling.type", GgufValue::string("dynamic")).find("'dynamic' is not supported"),
            std::string::npos);
}

TEST_F(ModelValidation, ActivationOnlyFormatsAreNotWeights) {
  test::RandomModelSpec wide;
  wide.embedding = 256;  // rows long enough for a 256-element Q8_K block
  test::write_random_model(wide, dir_ / "wide.gguf");
  test::rewrite_gguf(dir_ / "wide.gguf", dir_ / "edited.gguf", [](test::GgufEdit& e) {
    for (auto& t : e.tensors) {
      if (t.name != "blk.0.ffn_up.weight") continue;
      std::vector<float> values(t.data.size() / sizeof(float));
      std::memcpy(values.data(), t.data.data(), t.data.size());
      t.type = TensorType::Q8_K;
      t.data.resize(tensor_row_bytes(TensorType::Q8_K, values.size()));
      quantize_row(TensorType::Q8_K, values.data(), t.data.data(), values.size());
    }
  });
  try {
    Model::load(dir_ / "edited.gguf");
    FAIL();
  } catch (const UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("'blk.0.ffn_up.weight' is stored as Q8_K"), std::string::npos) << e.what();
  }
}

TEST(KvCacheLimits, HugeContextIsAClearError) {
  ModelConfig config;
  config.layer_count = 2;
  config.kv_head_count = 2;
  config.head_size = 16;
  EXPECT_THROW(KvCache(config, int64_t{1} << 40), Error);
  EXPECT_THROW(KvCache(config, 0), Error);
  KvCache cache(config, 8, KvPrecision::F16);
  EXPECT_EQ(cache.bytes(), 2u * 2u * 8u * 32u * 2u);
  EXPECT_THROW(cache.truncate(1), Error);  // nothing cached yet
}

}  // namespace
}  // namespace frugal
