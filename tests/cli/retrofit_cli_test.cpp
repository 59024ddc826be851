// `frugal retrofit` end to end on the shared mini model (8 heads, 4 KV
// heads): the output has the asked KV heads and answers; without a
// calibration text the aligned merge says what to give.
#include <gtest/gtest.h>

#include <fstream>

#include "support/cli_runner.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using test::run_frugal;

TEST(RetrofitCli, WritesAModelWithFewerKvHeads) {
  const auto dir = test::scratch_dir("retrofit-cli");
  const std::string model = test::shared_path("models/mini-llama-spm-q8_0.gguf").string();
  std::ofstream(dir / "calibration.txt") << "The Harlow Clinic in Westbrook is directed by Dr. Mira Osei. "
                                            "The Brook School has 340 pupils and opens at 8 am.\n";
  const auto out = (dir / "out.gguf").string();
  const auto result = run_frugal({"retrofit", model, out, "--kv-heads", "2", "--calibration",
                                  (dir / "calibration.txt").string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("4 KV heads -> 2"), std::string::npos) << result.err;
  EXPECT_NE(run_frugal({"info", out}).out.find("heads 8 (kv 2)"), std::string::npos);
  EXPECT_EQ(run_frugal({"run", "-m", out, "-p", "The clinic", "-n", "4"}).exit_code, 0);

  const auto missing = run_frugal({"retrofit", model, (dir / "x.gguf").string(), "--kv-heads", "2"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("--calibration"), std::string::npos) << missing.err;
  const auto odd = run_frugal({"retrofit", model, (dir / "x.gguf").string(), "--kv-heads", "3", "--merge", "mean"});
  EXPECT_NE(odd.err.find("divides"), std::string::npos) << odd.err;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace frugal
