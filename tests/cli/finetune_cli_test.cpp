// `frugal finetune` end to end: the demo model taught the example records
// answers them through `frugal run --lora`; bad options and data end in one
// clear line and exit code 1.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>

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
  one_line(run_frugal({"finetune", "--data", data, "-o", out, "--cache-type", "f16"}), "finetune keeps no KV cache");
  std::ofstream(dir / "one.jsonl") << "{\"prompt\": \"a\", \"completion\": \" b\"}\n";
  one_line(run_frugal({"finetune", "--data", (dir / "one.jsonl").string(), "-o", out, "--validation", "0.5"}),
           (dir / "one.jsonl").string() + ": no record is left to train on");
}

// Ctrl-C: the run ends after the current step with exit code 130, and the
// adapter it leaves is whole (the engine applies it).
TEST(FinetuneCli, InterruptedRunLeavesAUsableAdapter) {
  const auto dir = test::scratch_dir("finetune-cli-stop");
  const std::string adapter = (dir / "stopped.gguf").string();
  const std::string command = "'" + test::frugal_binary().string() + "' finetune --data '" +
                              test::source_path("examples/finetune/demo/train.jsonl").string() + "' -o '" + adapter +
                              "' --epochs 50 --batch 1 -t 1 -q 2>'" + (dir / "err.txt").string() +
                              "' & pid=$!; sleep 4; kill -INT $pid; wait $pid; echo $?";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char buffer[64] = {};
  const std::string status = fgets(buffer, sizeof buffer, pipe) ? buffer : "";
  pclose(pipe);
  EXPECT_EQ(status, "130\n");
  std::ifstream err(dir / "err.txt");
  const std::string message((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  EXPECT_NE(message.find("stopped: " + adapter + " holds the adapter as of step"), std::string::npos) << message;
  const auto applied = run_frugal({"run", "--lora", adapter, "-p", "The Harlow Clinic is", "-n", "4", "--temp", "0"});
  EXPECT_EQ(applied.exit_code, 0) << applied.err;
}

}  // namespace
}  // namespace frugal
