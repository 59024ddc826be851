// The command line's edges: unknown commands, bad values (one `error:` line
// and exit code 1), sampling values out of range, random seeds, outputs
// checked before any work, beam search within the context, `ask` greedy.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "support/cli_runner.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using test::CommandResult;
using test::run_frugal;

std::string tiny_model() { return test::shared_path("models/tiny-llama-spm.gguf").string(); }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A bad argument: exit code 1 and exactly one line, `error: ...`, on stderr.
void expect_argument_error(const CommandResult& result, const std::string& part) {
  EXPECT_EQ(result.exit_code, 1) << result.err;
  EXPECT_EQ(result.err.rfind("error: ", 0), 0u) << result.err;
  EXPECT_EQ(std::count(result.err.begin(), result.err.end(), '\n'), 1) << result.err;
  EXPECT_TRUE(contains(result.err, part)) << "wanted '" << part << "' in: " << result.err;
}

TEST(CliArguments, UnknownAndMissingCommandsNameTheChoices) {
  auto result = run_frugal({"foo"});
  expect_argument_error(result, "unknown command 'foo'");
  EXPECT_TRUE(contains(result.err, "run, info")) << result.err;
  result = run_frugal({"kb", "rebuild"});
  expect_argument_error(result, "unknown command 'rebuild'");
  EXPECT_TRUE(contains(result.err, "build, add, update, remove, convert, info")) << result.err;
  expect_argument_error(run_frugal({}), "give a command");
}

TEST(CliArguments, BadValuesExitOneAndHelpExitsZero) {
  expect_argument_error(run_frugal({"run", "-m", tiny_model(), "-p", "x", "-n", "abc"}), "'abc' is not a number");
  expect_argument_error(run_frugal({"run", "-m", tiny_model(), "-p", "x", "-n", "1.5"}), "not a whole number");
  expect_argument_error(run_frugal({"run", "-m", tiny_model(), "-p", "x", "-t", "5000"}), "out of range");
  expect_argument_error(run_frugal({"run", "-m", tiny_model(), "-p", "x", "--bogus"}), "--bogus");
  expect_argument_error(run_frugal({"kb", "build", "-o", "x.fkv"}), "--docs");
  expect_argument_error(run_frugal({"run", "-m", "/nonexistent.gguf", "-p", "x"}), "/nonexistent.gguf");
  // llama.cpp's -ctk / -ctv, each its own type; an unknown type is named.
  EXPECT_EQ(run_frugal({"run", "-m", tiny_model(), "-p", "x", "-n", "1", "-ctk", "f16", "-ctv", "f32"}).exit_code, 0);
  EXPECT_EQ(run_frugal({"run", "-m", tiny_model(), "-p", "x", "-n", "1", "-ctk", "f16", "-ctv", "f16"}).exit_code, 0);
  expect_argument_error(run_frugal({"run", "-m", tiny_model(), "-p", "x", "-ctk", "q5_1"}), "q5_1 is not a KV type");
  for (const std::vector<std::string>& ok : {std::vector<std::string>{"--help"}, {"--version"}, {"run", "--help"}}) {
    const auto result = run_frugal(ok);
    EXPECT_EQ(result.exit_code, 0) << ok[0] << ": " << result.err;
    EXPECT_FALSE(result.out.empty());
  }
}

TEST(CliArguments, SamplingValuesOutOfRangeAreRefused) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--top-p", "2"},           {"--top-p", "-0.1"},      {"--top-k", "-5"},         {"--min-p", "5"},
      {"--temp", "inf"},          {"--temp", "nan"},        {"--temp", "-1"},          {"--repeat-last-n", "-5"},
      {"--repeat-penalty", "0"},  {"--repeat-penalty", "-1"}, {"-s", "-2"},           {"-s", "4294967296"},
      {"-s", "18446744073709551615"}, {"--top-k", "x"}};
  const auto docs = test::source_path("examples/town").string();
  for (const std::vector<std::string>& command : {std::vector<std::string>{"run", "-m", tiny_model(), "-p", "x"},
                                                  {"ask", "-m", tiny_model(), "--docs", docs, "Who?"}}) {
    for (const auto& [option, value] : bad) {
      SCOPED_TRACE(command[0] + " " + option + " " + value);
      auto args = command;
      args.insert(args.end(), {option, value});
      const auto result = run_frugal(args);
      EXPECT_EQ(result.exit_code, 1) << result.err;
      EXPECT_TRUE(contains(result.err, "error: ")) << result.err;
      EXPECT_TRUE(contains(result.err, value)) << result.err;
    }
  }
  // The edges are accepted: -1 looks back over the whole context.
  const auto result = run_frugal({"run", "-m", tiny_model(), "-p", "Hello", "-n", "3", "--top-p", "1", "--min-p", "0",
                                  "--top-k", "0", "--repeat-last-n", "-1", "--repeat-penalty", "1.1", "-s", "0",
                                  "-q"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
}

TEST(CliArguments, SeedMinusOneIsRandomPrintedAndRepeatable) {
  const std::vector<std::string> sampled = {"run", "-m", tiny_model(), "-p", "Hello", "-n", "12", "--temp", "1"};
  auto args = sampled;
  args.insert(args.end(), {"-s", "-1"});
  const auto first = run_frugal(args);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(first.err, match, std::regex("seed: ([0-9]+)\n"))) << first.err;
  const unsigned long long seed = std::stoull(match[1]);
  EXPECT_LT(seed, 4294967295ull);
  args = sampled;
  args.insert(args.end(), {"-s", match[1].str(), "-q"});
  const auto again = run_frugal(args);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, first.out);
  EXPECT_FALSE(contains(again.err, "seed: ")) << again.err;  // a given seed is not announced
}

TEST(CliAsk, AnswersGreedilyByDefault) {
  ::unsetenv("FRUGAL_DEFAULT_MODEL");
  const auto help = run_frugal({"ask", "--help"});
  ASSERT_EQ(help.exit_code, 0);
  std::smatch match;
  ASSERT_TRUE(std::regex_search(help.out, match, std::regex("--temp [^\n]*=([0-9.]+) "))) << help.out;
  EXPECT_EQ(match[1], "0");
  const std::vector<std::string> ask = {"ask", "-t", "2", "--docs", test::source_path("examples/town").string(),
                                        "Who directs the Harlow Clinic?", "-n", "16", "--json"};
  const auto a = run_frugal(ask), b = run_frugal(ask);
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const auto first = nlohmann::json::parse(a.out);
  EXPECT_FALSE(first.contains("seed")) << a.out;  // no sampling, no seed
  EXPECT_EQ(first["answer"], "Dr. Mira Osei");
  EXPECT_EQ(nlohmann::json::parse(b.out)["token_ids"], first["token_ids"]);
}

TEST(CliBeam, StopsAtTheContext) {
  const auto tokens = run_frugal({"tokenize", "-m", tiny_model(), "-p", "Once upon a time", "--ids"});
  ASSERT_EQ(tokens.exit_code, 0) << tokens.err;
  const size_t prompt_tokens = nlohmann::json::parse(tokens.out).size();
  ASSERT_LT(prompt_tokens, 16u);
  const auto result = run_frugal({"beam", "-m", tiny_model(), "-p", "Once upon a time", "-c", "16", "-n", "100", "-k",
                                  "2", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto hypotheses = nlohmann::json::parse(result.out)["trie"]["hypotheses"];
  ASSERT_FALSE(hypotheses.empty());
  for (const auto& h : hypotheses) EXPECT_LE(h["tokens"].size(), 16 - prompt_tokens);
  const auto full = run_frugal({"beam", "-m", tiny_model(), "-p", "Once upon a time", "-c", "3"});
  EXPECT_EQ(full.exit_code, 1);
  EXPECT_TRUE(contains(full.err, "fills the context of 3 tokens")) << full.err;
}

TEST(CliOutputs, ABadOutputPathFailsBeforeAnyWork) {
  const auto dir = test::scratch_dir("cli-outputs");
  const auto missing = (dir / "missing_dir" / "x.fkv").string();
  auto result = run_frugal({"kb", "build", "-m", tiny_model(), "--docs", test::source_path("examples/town").string(),
                            "-o", missing});
  expect_argument_error(result, "does not exist");
  EXPECT_FALSE(contains(result.err, "prompt layout")) << result.err;  // no prefill was started
  result = run_frugal({"quantize", tiny_model(), (dir / "missing_dir" / "q.gguf").string(), "Q8_0"});
  expect_argument_error(result, "does not exist");

  // A FIFO (or a device) is not replaced by a file.
  const auto fifo = dir / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  result = run_frugal({"quantize", tiny_model(), fifo.string(), "Q8_0"});
  expect_argument_error(result, "is not a regular file (a FIFO)");
  EXPECT_TRUE(std::filesystem::is_fifo(fifo));
  std::filesystem::remove_all(dir);
}

TEST(CliOae, AnEmptyDatasetSaysSo) {
  const auto dir = test::scratch_dir("cli-oae-empty");
  std::ofstream(dir / "empty.json") << R"({"version": "1.1", "data": []})";
  const auto result = run_frugal({"oae", "run", "-m", tiny_model(), "--dataset", (dir / "empty.json").string(),
                                  "--out", (dir / "report").string()});
  expect_argument_error(result, "the dataset has no questions");
  std::filesystem::remove_all(dir);
}

TEST(CliServe, AddressErrorsBlameWhatIsWrong) {
  const std::string model = tiny_model();
  auto serve = [&](const std::string& host, const std::string& port) {
    return run_frugal({"serve", "-m", model, "--host", host, "--port", port});
  };
  expect_argument_error(serve("999.1.1.1", "8080"), "not an address or a known host name");
  expect_argument_error(serve("not-a-host.invalid", "8080"), "not an address or a known host name");
  expect_argument_error(serve("8.8.8.8", "8080"), "is not an address of this machine");
  expect_argument_error(serve("", "8080"), "--host is empty");
  // A port another program listens on.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  expect_argument_error(serve("127.0.0.1", std::to_string(ntohs(address.sin_port))), "the port is in use");
  ::close(fd);
}

}  // namespace
}  // namespace frugal
