// End-to-end: `frugal kb` and `frugal ask` on the shared mini model.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support/cli_runner.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using test::run_frugal;

class KbCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir("kb-cli");
    std::filesystem::create_directory(dir_ / "docs");
    write(dir_ / "docs" / "clinic.md", "# Harlow Clinic\nThe Harlow Clinic is directed by Dr. Mira Osei.\n");
    write(dir_ / "docs" / "school.md", "# Brook School\nThe Brook School has 340 pupils.\n");
    write(dir_ / "docs" / "office.txt", "The town office opens at 9 am.\n");
    const auto result = run_frugal({"kb", "build", "-m", model_, "-t", "2", "--docs", (dir_ / "docs").string(),
                                    "-o", kb()});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_NE(result.err.find("3 documents"), std::string::npos) << result.err;
  }

  static void write(const std::filesystem::path& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  }
  std::string kb() const { return (dir_ / "kb.fkv").string(); }

  nlohmann::json ask_json(const std::string& question, bool no_cache) {
    std::vector<std::string> args = {"ask", "-m", model_, "-t", "2", "--kb", kb(), question, "-n", "10", "--temp",
                                     "0", "--json"};
    if (no_cache) args.push_back("--no-cache");
    const auto result = run_frugal(args);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return nlohmann::json::parse(result.out);
  }

  std::filesystem::path dir_;
  std::string model_ = test::shared_path("models/mini-llama-spm-q8_0.gguf").string();
};

TEST_F(KbCliTest, AskWithTheCacheEqualsTheNoCacheBaseline) {
  for (const char* question : {"Who directs the Harlow Clinic?", "When does the town office open?"}) {
    const auto cached = ask_json(question, false);
    const auto baseline = ask_json(question, true);
    EXPECT_EQ(cached["token_ids"], baseline["token_ids"]) << question;
    EXPECT_EQ(cached["answer"], baseline["answer"]);
    EXPECT_EQ(cached["mode"], "cache");
    EXPECT_EQ(baseline["mode"], "no-cache");
    EXPECT_GT(baseline["prompt_tokens"].get<int>(), cached["prompt_tokens"].get<int>());
    for (const char* key : {"load_ms", "ttft_ms", "total_ms", "tokens"}) EXPECT_TRUE(cached.contains(key)) << key;
  }
}

TEST_F(KbCliTest, InteractiveAnswersEveryLine) {
  const auto result = run_frugal({"ask", "-m", model_, "-t", "2", "--kb", kb(), "--interactive", "-n", "4",
                                  "--temp", "0", "--json"},
                                 "Who directs the clinic?\n\nHow many pupils?\n");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::istringstream lines(result.out);
  std::string line;
  std::vector<nlohmann::json> answers;
  while (std::getline(lines, line)) answers.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[1]["question"], "How many pupils?");
  // Greedy: the 4 tokens are the start of the 10-token answer of a fresh process.
  const auto longer = ask_json("How many pupils?", false)["token_ids"];
  EXPECT_EQ(answers[1]["token_ids"], nlohmann::json(std::vector<nlohmann::json>(longer.begin(), longer.begin() + 4)));
}

TEST_F(KbCliTest, UpdateAddRemoveAndInfo) {
  write(dir_ / "office.txt", "The town office opens at 7 am and closes at noon.\n");
  auto result = run_frugal({"kb", "update", "-m", model_, "-t", "2", kb(), "--docs", (dir_ / "office.txt").string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  // Files sort as clinic.md, office.txt, school.md: office is document 2.
  EXPECT_NE(result.err.find("from document 2 on"), std::string::npos) << result.err;

  write(dir_ / "depot.txt", "The bus depot has 12 buses.\n");
  result = run_frugal({"kb", "add", "-m", model_, "-t", "2", kb(), "--docs", (dir_ / "depot.txt").string(),
                       "--append-only"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("from document 4 on"), std::string::npos) << result.err;

  result = run_frugal({"kb", "remove", "-m", model_, "-t", "2", kb(), "clinic"});
  ASSERT_EQ(result.exit_code, 0) << result.err;

  result = run_frugal({"kb", "info", kb()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("documents:  3"), std::string::npos) << result.out;
  EXPECT_EQ(result.out.find("clinic"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("depot"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("checksum verified"), std::string::npos) << result.out;

  // The edited file answers like the baseline.
  const auto cached = ask_json("How many buses?", false);
  EXPECT_EQ(cached["token_ids"], ask_json("How many buses?", true)["token_ids"]);
}

// A cache is built in the default F16 and answers in its own type; a type
// given to ask converts it (not ignored).
TEST_F(KbCliTest, AskUsesTheSavedTypeUnlessOneIsGiven) {
  EXPECT_EQ(ask_json("Who directs the Harlow Clinic?", false)["cache_type"], "f16");
  for (const char* type : {"f32", "q8_0"}) {
    const auto result = run_frugal({"ask", "-m", model_, "-t", "2", "--kb", kb(), "Who directs the Harlow Clinic?",
                                    "-n", "10", "--temp", "0", "--json", "--cache-type", type});
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_EQ(nlohmann::json::parse(result.out)["cache_type"], type);
  }
  // -ctk alone converts the keys only: the values stay as saved (f32 here).
  const std::string kb32 = (dir_ / "kb32.fkv").string();
  const auto built = run_frugal({"kb", "build", "-m", model_, "-t", "2", "--docs", (dir_ / "docs").string(), "-o",
                                 kb32, "--cache-type", "f32"});
  ASSERT_EQ(built.exit_code, 0) << built.err;
  const auto keys_only = run_frugal({"ask", "-m", model_, "-t", "2", "--kb", kb32, "Who directs the Harlow Clinic?",
                                     "-n", "4", "--json", "-ctk", "q8_0"});
  ASSERT_EQ(keys_only.exit_code, 0) << keys_only.err;
  EXPECT_EQ(nlohmann::json::parse(keys_only.out)["cache_type"], "q8_0/f32");
}

TEST_F(KbCliTest, AskWithDocsPrefillsInMemoryAndAnswersAsTheSavedCache) {
  const auto result = run_frugal({"ask", "-m", model_, "-t", "2", "--docs", (dir_ / "docs").string(),
                                  "Who directs the Harlow Clinic?", "-n", "10", "--temp", "0", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(nlohmann::json::parse(result.out)["token_ids"], ask_json("Who directs the Harlow Clinic?", false)["token_ids"]);
  const auto neither = run_frugal({"ask", "-m", model_, "Who?"});
  EXPECT_EQ(neither.exit_code, 1);
  EXPECT_NE(neither.err.find("--kb FILE.fkv or --docs"), std::string::npos) << neither.err;
}

TEST(DefaultModel, UsedWhenNoModelIsGivenAndSaidSo) {
  ::setenv("FRUGAL_DEFAULT_MODEL", test::shared_path("models/tiny-llama-spm.gguf").c_str(), 1);
  auto result = run_frugal({"run", "-p", "Hello", "-n", "2", "--temp", "0", "-q"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("using the built-in demo model"), std::string::npos) << result.err;
  ::setenv("FRUGAL_DEFAULT_MODEL", "/nonexistent/demo.gguf", 1);
  result = run_frugal({"run", "-p", "Hello", "-n", "2"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("FRUGAL_DEFAULT_MODEL names /nonexistent/demo.gguf"), std::string::npos) << result.err;
  ::unsetenv("FRUGAL_DEFAULT_MODEL");
  // Commands that need a particular model still require -m.
  result = run_frugal({"logits", "-f", "/dev/null"});
  EXPECT_NE(result.exit_code, 0);
}

// The README's main command: no -m, the committed demo model beside the
// build tree, the example documents; the answers are the documents' facts.
TEST(DefaultModel, TheDemoModelAnswersFromTheExamples) {
  ::unsetenv("FRUGAL_DEFAULT_MODEL");
  const auto docs = test::source_path("examples/town").string();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"Who directs the Harlow Clinic?", "Dr. Mira Osei"},
      {"Where was the director of the Harlow Clinic born?", "Kingsbury"},
      {"Who owns the Mill Road Bakery?", "Mrs. Ines Costa"},
      {"How many staff does the Westbrook Town Office have?", "18"},
      {"When was the Zenith Observatory founded?", "unknown"},
  };
  std::string questions;
  for (const auto& [question, answer] : cases) questions += question + "\n";
  const auto result = run_frugal({"ask", "-t", "2", "--docs", docs, "-i", "--json", "--temp", "0"}, questions);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("using the built-in demo model"), std::string::npos) << result.err;
  std::istringstream lines(result.out);
  std::string line;
  for (const auto& [question, answer] : cases) {
    ASSERT_TRUE(std::getline(lines, line)) << result.out;
    std::string got = nlohmann::json::parse(line)["answer"];
    got.erase(0, got.find_first_not_of(' '));
    EXPECT_EQ(got, answer) << question;
  }
}

// Removing the last documents truncates the cache (they used to stay, with
// "nothing changed"); removing every document is refused.
TEST(KbRemove, TrailingDocumentsAreReallyRemoved) {
  ::unsetenv("FRUGAL_DEFAULT_MODEL");  // the demo model
  const auto dir = test::scratch_dir("kb-remove");
  const std::string kb = (dir / "town.fkv").string();
  auto result = run_frugal({"kb", "build", "-t", "2", "--docs", test::source_path("examples/town").string(), "-o", kb});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  result = run_frugal({"kb", "remove", "-t", "2", kb, "town-office"});  // the last of five
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.err.find("nothing changed"), std::string::npos) << result.err;
  result = run_frugal({"kb", "info", kb});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("documents:  4"), std::string::npos) << result.out;
  EXPECT_EQ(result.out.find("town-office"), std::string::npos) << result.out;
  result = run_frugal({"ask", "-t", "2", "--kb", kb, "Who directs the Harlow Clinic?", "--temp", "0", "--json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(nlohmann::json::parse(result.out)["answer"], "Dr. Mira Osei");

  result = run_frugal({"kb", "remove", "-t", "2", kb, "brook-school", "harlow-clinic", "mill-bakery", "mira-osei"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("removing every document would leave an empty cache; delete the file instead"),
            std::string::npos) << result.err;
  EXPECT_NE(run_frugal({"kb", "info", kb}).out.find("documents:  4"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_F(KbCliTest, WrongModelAndMissingQuestionAreClearErrors) {
  auto result = run_frugal({"ask", "-m", test::shared_path("models/tiny-llama-spm.gguf").string(), "--kb", kb(),
                            "Who?"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("rebuild"), std::string::npos) << result.err;
  result = run_frugal({"ask", "-m", model_, "--kb", kb()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("give a question"), std::string::npos) << result.err;
  result = run_frugal({"kb", "info", model_});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("not a frugal knowledge cache"), std::string::npos) << result.err;
}

}  // namespace
}  // namespace frugal
