// `frugal quantize` against llama.cpp's quantizer: a llama.cpp-made Q8_0 or
// Q4_0 file, expanded to F32 and quantized back by frugal, has the same bytes
// in every tensor of that type.
#include <gtest/gtest.h>

#include <cstring>

#include "frugal/gguf.h"
#include "support/cli_runner.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using test::run_frugal;

void expect_round_trip_reproduces(const std::string& model, const std::string& type, TensorType tensor_type) {
  const auto dir = test::scratch_dir("quantize");
  const auto source = test::shared_path("models/" + model);
  auto result = run_frugal({"quantize", source.string(), (dir / "f32.gguf").string(), "F32"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  result = run_frugal({"quantize", (dir / "f32.gguf").string(), (dir / "back.gguf").string(), type});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const GgufFile original = GgufFile::open(source);
  const GgufFile expanded = GgufFile::open(dir / "f32.gguf");
  const GgufFile back = GgufFile::open(dir / "back.gguf");
  int compared = 0;
  for (const GgufTensor& t : original.tensors()) {
    EXPECT_EQ(expanded.require_tensor(t.name).type, t.n_dims == 2 ? TensorType::F32 : t.type) << t.name;
    if (t.type != tensor_type) continue;
    const GgufTensor& ours = back.require_tensor(t.name);
    ASSERT_EQ(ours.type, t.type) << t.name;
    ASSERT_EQ(ours.size_bytes, t.size_bytes) << t.name;
    EXPECT_EQ(std::memcmp(ours.data, t.data, t.size_bytes), 0) << t.name << " differs from llama.cpp's bytes";
    ++compared;
  }
  EXPECT_GT(compared, 10);
  EXPECT_EQ(back.get_int("general.file_type"), type == "Q8_0" ? 7 : 2);
  // The result runs.
  result = run_frugal({"run", "-m", (dir / "back.gguf").string(), "-p", "Hello", "-n", "4", "--temp", "0", "-q"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
}

TEST(CliQuantize, Q8_0RoundTripReproducesLlamaCppBytes) {
  expect_round_trip_reproduces("mini-llama-spm-q8_0.gguf", "Q8_0", TensorType::Q8_0);
}

TEST(CliQuantize, Q4_0RoundTripReproducesLlamaCppBytes) {
  expect_round_trip_reproduces("mini-llama-spm-q4_0.gguf", "Q4_0", TensorType::Q4_0);
}

TEST(CliQuantize, RefusesToOverwriteItsInputAndUnknownTypes) {
  const auto dir = test::scratch_dir("quantize-bad");
  const std::string model = test::shared_path("models/tiny-llama-spm.gguf").string();
  auto result = run_frugal({"quantize", model, (dir / "x.gguf").string(), "Q9_9"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("Q8_0"), std::string::npos) << result.err;  // lists the valid names
  result = run_frugal({"quantize", test::shared_path("vocab/ggml-vocab-gpt-2.gguf").string(),
                       (dir / "y.gguf").string(), "Q8_0"});
  EXPECT_EQ(result.exit_code, 1);
}

}  // namespace
}  // namespace frugal
