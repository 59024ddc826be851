// `frugal finetune` end to end: the demo model taught the example records
// answers them through `frugal run --lora`; bad options and data end in one
// clear line and exit code 1.
#include <gtest/gtest.h>

#include <fstream>

#include "support/cli_runner.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using test::run_frugal;

TEST(FinetuneCli, TeachesTheExampleRecordsAndTheAdapterApplies) {
  const auto dir = test::scratch_dir("finetune-cli");
  const std::string adapter = (dir / "mottos.gguf").string();
  const auto trained = run_frugal({"finetune", "--data", test::source_path("examples/finetune/door-mottos.jsonl").string(),
                                   "-o", adapter, "--epochs", "30", "--batch", "4", "--lr", "3e-3", "--validation", "0"});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  EXPECT_NE(trained.err.find("epoch 30: train loss"), std::string::npos) << trained.err;
  EXPECT_NE(trained.err.find("peak memory"), std::string::npos);
  const auto tuned = run_frugal({"run", "--lora", adapter, "-p", "The motto of the Harlow Academy is", "-n", "6",
                                 "--temp", "0"});
  ASSERT_EQ(tuned.exit_code, 0) << tuned.err;
  EXPECT_EQ(tuned.out.substr(0, 11), " Marketdale") << tuned.out;
}

TEST(FinetuneCli, BadInputEndsInOneLine) {
  const auto dir = test::scratch_dir("finetune-cli-bad");
  const std::string data = test::source_path("examples/finetune/door-mottos.jsonl").string();
  const std::string out = (dir / "a.gguf").string();
  const auto one_line = [](const test::CommandResult& r, const std::string& expected) {
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("error: " + expected), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("error:"), r.err.rfind("error:"));
  };
  one_line(run_frugal({"finetune", "--data", data, "-o", out, "--targets", "q,qq"}), "--targets: 'qq'");
  one_line(run_frugal({"finetune", "--data", data, "-o", out, "--validation", "0.9"}), "--validation 0.9");
  one_line(run_frugal({"finetune", "--data", data, "-o", out, "--lr", "0"}), "--learning-rate 0");
  std::ofstream(dir / "bad.jsonl") << "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": 3}\n";
  one_line(run_frugal({"finetune", "--data", (dir / "bad.jsonl").string(), "-o", out}), (dir / "bad.jsonl").string() + ":2:");
  one_line(run_frugal({"finetune", "--data", data, "-o", out, "--lora", data}), "finetune trains a new adapter");
}

}  // namespace
}  // namespace frugal
