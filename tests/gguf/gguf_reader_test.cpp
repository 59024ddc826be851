// GGUF reader/writer tests: real files from ../shared, writer round trips and
// every class of bad input the reader must reject with a clear message.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "frugal/error.h"
#include "frugal/gguf.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

std::vector<uint8_t> small_model_bytes() {
  GgufWriter writer;
  writer.set("general.architecture", GgufValue::string("llama"));
  writer.set("llama.block_count", GgufValue::u32(2));
  writer.set("test.nested", GgufValue::array(GgufType::Array,
                                             {GgufValue::i32_array({1, 2}), GgufValue::i32_array({3})}));
  writer.set("test.strings", GgufValue::string_array({"a", "bc", ""}));
  writer.set("test.f64", GgufValue::f64(0.125));
  writer.set("test.flag", GgufValue::boolean(true));
  writer.set("test.i8", GgufValue{GgufType::Int8, int64_t{-5}});
  std::vector<float> values(64);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
  writer.add_tensor("weights", TensorType::F32, {16, 4},
                    {reinterpret_cast<const uint8_t*>(values.data()), values.size() * 4});
  writer.add_tensor("bias", TensorType::F32, {3}, {reinterpret_cast<const uint8_t*>(values.data()), 12});
  return writer.to_bytes();
}

// Offset of the first byte of `needle` in `bytes` (for targeted corruption).
size_t find_bytes(const std::vector<uint8_t>& bytes, std::string_view needle) {
  auto it = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
  EXPECT_NE(it, bytes.end()) << needle;
  return static_cast<size_t>(it - bytes.begin());
}

template <typename T>
void poke(std::vector<uint8_t>& bytes, size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

// Parses `bytes` and expects a FormatError whose message contains `fragment`.
void expect_rejected(const std::vector<uint8_t>& bytes, const std::string& fragment) {
  try {
    GgufFile::parse(bytes, "corrupt.gguf");
    FAIL() << "parse accepted a corrupt file (expected: " << fragment << ")";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("corrupt.gguf"), std::string::npos) << e.what();
  }
}

TEST(GgufReader, ReadsRealModelFile) {
  auto file = GgufFile::open(test::shared_path("models/tiny-llama-spm.gguf"));
  EXPECT_EQ(file.version(), 3u);
  EXPECT_EQ(file.get_string("general.architecture"), "llama");
  EXPECT_EQ(file.get_int("llama.block_count"), 2);
  EXPECT_EQ(file.get_int("llama.embedding_length"), 64);
  const auto tokens = file.require("tokenizer.ggml.tokens").as_string_vector();
  EXPECT_EQ(tokens.size(), 32000u);
  EXPECT_EQ(tokens[1], "<s>");
  const auto& embedding = file.require_tensor("token_embd.weight");
  EXPECT_EQ(embedding.type, TensorType::F32);
  EXPECT_EQ(embedding.shape[0], 64);
  EXPECT_EQ(embedding.shape[1], 32000);
  EXPECT_EQ(embedding.size_bytes, 64u * 32000u * 4u);
  EXPECT_EQ(file.find_tensor("output.weight"), nullptr);  // tied embeddings
  for (const auto& t : file.tensors()) {
    EXPECT_EQ((t.data - (file.tensors()[0].data - file.tensors()[0].offset)) % file.alignment(), 0u) << t.name;
    EXPECT_LE(static_cast<uint64_t>(t.data - file.tensors()[0].data) + t.size_bytes, file.file_size());
  }
}

TEST(GgufReader, ReadsQuantizedModelTensorTypes) {
  auto file = GgufFile::open(test::shared_path("models/mini-llama-spm-q4_k_m.gguf"));
  std::map<TensorType, int> counts;
  for (const auto& t : file.tensors()) counts[t.type]++;
  EXPECT_GT(counts[TensorType::Q4_K], 0);
  EXPECT_GT(counts[TensorType::Q6_K], 0);
}

TEST(GgufReader, ReadsEveryVocabFile) {
  for (const auto& entry : std::filesystem::directory_iterator(test::shared_path("vocab"))) {
    if (entry.path().extension() != ".gguf") continue;
    auto file = GgufFile::open(entry.path());
    EXPECT_FALSE(file.get_string("tokenizer.ggml.model").empty()) << entry.path();
  }
}

TEST(GgufWriter, RoundTripsAllValueTypes) {
  const auto bytes = small_model_bytes();
  auto file = GgufFile::parse(bytes);
  EXPECT_EQ(file.get_string("general.architecture"), "llama");
  EXPECT_EQ(file.require("llama.block_count").type, GgufType::UInt32);
  const auto& nested = file.require("test.nested").as_array();
  ASSERT_EQ(nested.items.size(), 2u);
  EXPECT_EQ(nested.items[0].as_int32_vector(), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(nested.items[1].as_int32_vector(), (std::vector<int32_t>{3}));
  EXPECT_EQ(file.require("test.strings").as_string_vector(), (std::vector<std::string>{"a", "bc", ""}));
  EXPECT_DOUBLE_EQ(file.get_float_or("test.f64", 0), 0.125);
  EXPECT_TRUE(file.get_bool_or("test.flag", false));
  EXPECT_EQ(file.get_int("test.i8"), -5);
  const auto& weights = file.require_tensor("weights");
  EXPECT_EQ(weights.shape_string(), "[16, 4]");
  float v;
  std::memcpy(&v, weights.data + 4 * 63, 4);
  EXPECT_EQ(v, 63.0f);
  const auto& bias = file.require_tensor("bias");
  EXPECT_EQ(bias.offset % 32, 0u);
  std::memcpy(&v, bias.data + 8, 4);
  EXPECT_EQ(v, 2.0f);
}

TEST(GgufWriter, RoundTripsRealFileExactly) {
  auto original = GgufFile::open(test::shared_path("models/tiny-qwen2-gpt2.gguf"));
  GgufWriter writer;
  for (const auto& [key, value] : original.metadata()) writer.set(key, value);
  for (const auto& t : original.tensors()) {
    writer.add_tensor(t.name, t.type, std::vector<int64_t>(t.shape.begin(), t.shape.begin() + t.n_dims),
                      {t.data, t.size_bytes});
  }
  const auto dir = test::scratch_dir("gguf-writer");
  writer.write(dir / "copy.gguf");
  auto copy = GgufFile::open(dir / "copy.gguf");
  ASSERT_EQ(copy.metadata().size(), original.metadata().size());
  ASSERT_EQ(copy.tensors().size(), original.tensors().size());
  for (size_t i = 0; i < copy.tensors().size(); ++i) {
    const auto& a = original.tensors()[i];
    const auto& b = copy.tensors()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.shape, b.shape);
    EXPECT_EQ(std::memcmp(a.data, b.data, a.size_bytes), 0) << a.name;
  }
  std::filesystem::remove_all(dir);
}

TEST(GgufWriter, RejectsInconsistentTensors) {
  GgufWriter writer;
  std::vector<uint8_t> data(10);
  EXPECT_THROW(writer.add_tensor("t", TensorType::F32, {4}, data), Error);
  EXPECT_THROW(writer.add_tensor("t", TensorType::Q8_0, {16}, data), Error);
  EXPECT_THROW(writer.add_tensor("t", TensorType::F32, {}, data), Error);
}

TEST(GgufBadInput, EmptyAndMissingFiles) {
  const auto dir = test::scratch_dir("gguf-bad");
  std::ofstream(dir / "empty.gguf").close();
  EXPECT_THROW(GgufFile::open(dir / "empty.gguf"), FormatError);
  EXPECT_THROW(GgufFile::open(dir / "missing.gguf"), Error);
  EXPECT_THROW(GgufFile::open(dir), Error);
  std::filesystem::remove_all(dir);
}

TEST(GgufBadInput, WrongMagic) {
  auto bytes = small_model_bytes();
  bytes[0] = 'X';
  expect_rejected(bytes, "not a GGUF file");
}

TEST(GgufBadInput, UnknownVersion) {
  auto bytes = small_model_bytes();
  poke<uint32_t>(bytes, 4, 1);
  expect_rejected(bytes, "version 1 is not supported");
  poke<uint32_t>(bytes, 4, 99);
  expect_rejected(bytes, "version 99");
}

TEST(GgufBadInput, VersionTwoIsAccepted) {
  auto bytes = small_model_bytes();
  poke<uint32_t>(bytes, 4, 2);
  EXPECT_EQ(GgufFile::parse(bytes).version(), 2u);
}

TEST(GgufBadInput, TruncatedAtEveryPointInTheHeader) {
  const auto bytes = small_model_bytes();
  auto file = GgufFile::parse(bytes);
  for (size_t cut = 0; cut < file.data_offset(); ++cut) {
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<long>(cut));
    EXPECT_THROW(GgufFile::parse(prefix, "cut.gguf"), FormatError) << "cut at " << cut;
  }
}

TEST(GgufBadInput, TensorDataPastEndOfFile) {
  auto bytes = small_model_bytes();
  bytes.resize(bytes.size() - 24);  // 20 bytes of padding, then 4 of data
  expect_rejected(bytes, "extends past the end of the file");
  auto shifted = small_model_bytes();
  const size_t name = find_bytes(shifted, "bias");
  // bias: name, n_dims(4), dim(8), type(4), offset(8)
  poke<uint64_t>(shifted, name + 4 + 4 + 8 + 4, uint64_t{1} << 40);
  expect_rejected(shifted, "extends past the end of the file");
}

TEST(GgufBadInput, AbsurdCountsAndLengths) {
  auto bytes = small_model_bytes();
  poke<uint64_t>(bytes, 8, uint64_t{1} << 50);  // tensor count
  expect_rejected(bytes, "tensor count");
  bytes = small_model_bytes();
  poke<uint64_t>(bytes, 16, uint64_t{1} << 50);  // metadata count
  expect_rejected(bytes, "metadata count");
  bytes = small_model_bytes();
  const size_t key = find_bytes(bytes, "general.architecture");
  poke<uint64_t>(bytes, key - 8, uint64_t{1} << 60);  // key length
  expect_rejected(bytes, "absurd length");
  bytes = small_model_bytes();
  const size_t strings = find_bytes(bytes, "test.strings");
  // key, value type (4), element type (4), count (8)
  poke<uint64_t>(bytes, strings + 12 + 4 + 4, uint64_t{1} << 40);
  expect_rejected(bytes, "array");
}

TEST(GgufBadInput, OverflowInTensorSize) {
  auto bytes = small_model_bytes();
  const size_t name = find_bytes(bytes, "weights");
  poke<uint64_t>(bytes, name + 7 + 4, uint64_t{1} << 40);
  poke<uint64_t>(bytes, name + 7 + 4 + 8, uint64_t{1} << 40);
  expect_rejected(bytes, "overflows");
}

TEST(GgufBadInput, DuplicateTensorNames) {
  GgufWriter writer;
  std::vector<uint8_t> data(16);
  writer.add_tensor("aaaa", TensorType::F32, {4}, data);
  writer.add_tensor("bbbb", TensorType::F32, {4}, data);
  auto dup = writer.to_bytes();
  std::memcpy(dup.data() + find_bytes(dup, "bbbb"), "aaaa", 4);
  expect_rejected(dup, "duplicate tensor name 'aaaa'");
}

TEST(GgufBadInput, DuplicateMetadataKeys) {
  GgufWriter writer;
  writer.set("key.one", GgufValue::u32(1));
  writer.set("key.two", GgufValue::u32(2));
  auto bytes = writer.to_bytes();
  std::memcpy(bytes.data() + find_bytes(bytes, "key.two"), "key.one", 7);
  expect_rejected(bytes, "duplicate metadata key 'key.one'");
}

TEST(GgufBadInput, UnknownTensorType) {
  auto bytes = small_model_bytes();
  const size_t name = find_bytes(bytes, "bias");
  poke<uint32_t>(bytes, name + 4 + 4 + 8, 77);
  expect_rejected(bytes, "unknown or unsupported tensor type 77");
}

TEST(GgufBadInput, UnknownValueTypeAndBadBool) {
  auto bytes = small_model_bytes();
  const size_t key = find_bytes(bytes, "test.flag");
  poke<uint32_t>(bytes, key + 9, 13);
  expect_rejected(bytes, "unknown value type 13");
  bytes = small_model_bytes();
  bytes[key + 9 + 4] = 7;
  expect_rejected(bytes, "bool value is 7");
}

TEST(GgufBadInput, TooManyDimensionsAndZeroDimension) {
  auto bytes = small_model_bytes();
  const size_t name = find_bytes(bytes, "bias");
  poke<uint32_t>(bytes, name + 4, 5);
  expect_rejected(bytes, "5 dimensions");
  bytes = small_model_bytes();
  poke<uint64_t>(bytes, name + 4 + 4, 0);
  expect_rejected(bytes, "dimension 0 is 0");
}

TEST(GgufBadInput, MisalignedOffsetAndBadAlignment) {
  auto bytes = small_model_bytes();
  const size_t name = find_bytes(bytes, "bias");
  poke<uint64_t>(bytes, name + 4 + 4 + 8 + 4, 257);
  expect_rejected(bytes, "not a multiple of the alignment");
  GgufWriter writer;
  writer.set("general.alignment", GgufValue::u32(24));
  std::vector<uint8_t> data(16);
  writer.add_tensor("t", TensorType::F32, {4}, data);
  expect_rejected(writer.to_bytes(), "power of two");
}

TEST(GgufBadInput, BlockSizeMismatch) {
  auto bytes = small_model_bytes();
  const size_t name = find_bytes(bytes, "bias");
  poke<uint32_t>(bytes, name + 4 + 4 + 8, static_cast<uint32_t>(TensorType::Q8_0));
  expect_rejected(bytes, "not a multiple of the block size");
}

TEST(GgufBadInput, DeeplyNestedArrays) {
  GgufValue value = GgufValue::i32_array({1});
  for (int i = 0; i < 12; ++i) value = GgufValue::array(GgufType::Array, {value});
  GgufWriter writer;
  writer.set("deep", value);
  expect_rejected(writer.to_bytes(), "nested deeper");
}

TEST(GgufValueAccess, TypeMismatchesAreClear) {
  const auto bytes = small_model_bytes();
  auto file = GgufFile::parse(bytes, "small.gguf");
  try {
    file.get_int("general.architecture");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("general.architecture"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("expected an integer"), std::string::npos);
  }
  try {
    file.get_string("no.such.key");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'no.such.key' is missing"), std::string::npos) << e.what();
  }
  EXPECT_EQ(file.get_int_or("no.such.key", 7), 7);
}

}  // namespace
}  // namespace frugal
