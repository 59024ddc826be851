// GgufWriter's streamed tensors (a RowSource produces rows while the file is
// written): same bytes as tensors given whole, and no file left on failure.
#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>

#include "frugal/error.h"
#include "frugal/gguf.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

// A 3 x 7 F32 tensor whose element (row r, column c) is 10 r + c, and a
// second one to check the alignment padding between tensors.
std::vector<uint8_t> rows_bytes(int64_t first, int64_t count) {
  std::vector<float> values;
  for (int64_t r = first; r < first + count; ++r) {
    for (int64_t c = 0; c < 7; ++c) values.push_back(static_cast<float>(10 * r + c));
  }
  const auto* bytes = reinterpret_cast<const uint8_t*>(values.data());
  return {bytes, bytes + values.size() * sizeof(float)};
}

GgufWriter writer_with_metadata() {
  GgufWriter writer;
  writer.set("general.architecture", GgufValue::string("llama"));
  return writer;
}

TEST(GgufWriterStream, StreamedTensorsEqualWholeOnes) {
  GgufWriter whole = writer_with_metadata(), streamed = writer_with_metadata();
  whole.add_tensor("a", TensorType::F32, {7, 3}, rows_bytes(0, 3));
  whole.add_tensor("b", TensorType::F32, {5}, std::vector<uint8_t>(20, 7));
  int calls = 0;
  streamed.add_tensor("a", TensorType::F32, {7, 3}, [&](int64_t first, int64_t count, std::span<uint8_t> out) {
    ++calls;
    const auto bytes = rows_bytes(first, count);
    ASSERT_EQ(out.size(), bytes.size());
    std::copy(bytes.begin(), bytes.end(), out.begin());
  });
  streamed.add_tensor("b", TensorType::F32, {5}, [](int64_t, int64_t, std::span<uint8_t> out) {
    std::fill(out.begin(), out.end(), uint8_t{7});
  });
  EXPECT_EQ(whole.to_bytes(), streamed.to_bytes());
  EXPECT_GT(calls, 0);

  const auto dir = test::scratch_dir("writer-stream");
  streamed.write(dir / "streamed.gguf");
  const GgufFile file = GgufFile::open(dir / "streamed.gguf");
  const GgufTensor& a = file.require_tensor("a");
  EXPECT_EQ(reinterpret_cast<const float*>(a.data)[2 * 7 + 3], 23.0f);
  EXPECT_EQ(file.require_tensor("b").data[19], 7);
  std::filesystem::remove_all(dir);
}

TEST(GgufWriterStream, FailingSourceLeavesNoFile) {
  GgufWriter writer = writer_with_metadata();
  writer.add_tensor("a", TensorType::F32, {7, 3}, [](int64_t, int64_t, std::span<uint8_t>) {
    throw std::runtime_error("source failed");
  });
  const auto dir = test::scratch_dir("writer-stream-fail");
  EXPECT_THROW(writer.write(dir / "model.gguf"), std::runtime_error);
  EXPECT_TRUE(std::filesystem::is_empty(dir));  // neither the file nor its temporary
  std::filesystem::remove_all(dir);
}

TEST(GgufWriterStream, ChecksShapesOfStreamedTensors) {
  GgufWriter writer;
  auto noop = [](int64_t, int64_t, std::span<uint8_t>) {};
  EXPECT_THROW(writer.add_tensor("q", TensorType::Q8_0, {30, 2}, noop), Error);  // not whole blocks
  EXPECT_THROW(writer.add_tensor("z", TensorType::F32, {0}, noop), Error);
  writer.add_tensor("ok", TensorType::F32, {4}, noop);
  EXPECT_THROW(writer.add_tensor("ok", TensorType::F32, {4}, noop), Error);  // duplicate name
  EXPECT_THROW(writer.add_tensor("wrong", TensorType::F32, {4}, std::vector<uint8_t>(15)), Error);
  EXPECT_THROW(writer.add_tensor("wrong", TensorType::F32, {4}, std::vector<uint8_t>(15)), Error);  // still absent
}

}  // namespace
}  // namespace frugal
