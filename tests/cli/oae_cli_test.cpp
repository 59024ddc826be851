// `frugal oae run` end to end on the tiny shared model (its answers are
// nonsense: the pipeline is what is tested), and the HTML report rendered by
// headless Chromium.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support/cli_runner.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using test::run_frugal;

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string shell(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) return out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  pclose(pipe);
  return out;
}

class OaeCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = test::scratch_dir("oae-cli");
    const auto result = run_frugal({"oae", "run", "-m", test::shared_path("models/tiny-llama-spm.gguf").string(), "-t",
                                    "2", "--dataset", test::shared_path("data/squad-dev-v1.1-super-bowl-50.json").string(),
                                    "--n-questions", "4", "--size", "small", "-n", "6", "--estimate-energy", "--out",
                                    dir_.string()});
    ASSERT_EQ(result.exit_code, 0) << result.err;
  }
  static std::filesystem::path dir_;
};
std::filesystem::path OaeCliTest::dir_;

TEST_F(OaeCliTest, JsonHasEveryMethodAndConsistentAmortisedCosts) {
  const auto report = nlohmann::json::parse(read_file(dir_ / "report.json"));
  EXPECT_EQ(report["energy"]["measured"], false);
  EXPECT_NE(report["energy"]["source"].get<std::string>().find("estimated"), std::string::npos);
  EXPECT_LE(report["dataset"]["corpus_tokens"].get<int>(), 1100);
  ASSERT_EQ(report["methods"].size(), 4u);
  std::vector<std::string> names;
  for (const auto& m : report["methods"]) {
    names.push_back(m["name"]);
    EXPECT_EQ(m["questions"].size(), 4u);
    const auto& joules = m["amortised"]["joules"];
    const double setup = joules["setup"], per_query = joules["per_query"];
    EXPECT_NEAR(joules["per_query_at_n"]["10"].get<double>(), (setup + 10 * per_query) / 10, 1e-9);
    EXPECT_GT(m["setup"]["seconds"].get<double>(), 0.0);
    for (const auto& q : m["questions"]) {
      EXPECT_GE(q["ttft_s"].get<double>(), 0.0);
      EXPECT_LE(q["decoded_tokens"].get<int>(), 6);
    }
  }
  EXPECT_EQ(names, (std::vector<std::string>{"cag", "rag-bm25", "long", "closed"}));
  // CAG prefills only the question; long context prefills everything each time.
  const auto& cag = report["methods"][0];
  const auto& longer = report["methods"][2];
  EXPECT_LT(cag["per_query"]["prefilled_tokens_mean"].get<double>(),
            longer["per_query"]["prefilled_tokens_mean"].get<double>() / 5);
  EXPECT_GT(cag["memory"]["disk_bytes"].get<double>(), 0.0);
  EXPECT_GT(report["methods"][1]["memory"]["disk_bytes"].get<double>(), 0.0);  // the BM25 index file
  EXPECT_TRUE(report["methods"][1]["quality"]["recall_at_k"].is_number());
  EXPECT_EQ(report["break_even"].size(), 12u);
}

TEST_F(OaeCliTest, MarkdownHasTheTables) {
  const std::string md = read_file(dir_ / "report.md");
  for (const char* heading : {"## Findings", "## Quality and cost per query", "## One-time setup",
                              "## Cost per query with the setup amortised", "## OAE score"}) {
    EXPECT_NE(md.find(heading), std::string::npos) << heading;
  }
  EXPECT_NE(md.find("| cag |"), std::string::npos);
}

TEST_F(OaeCliTest, HtmlRendersInHeadlessChromium) {
  const std::string chromium = shell("command -v chromium chromium-browser 2>/dev/null | head -n 1");
  ASSERT_FALSE(chromium.empty()) << "chromium is needed to render the report (scripts/setup.sh installs it)";
  const std::string binary = chromium.substr(0, chromium.find('\n'));
  const std::string url = "file://" + std::filesystem::absolute(dir_ / "report.html").string();
  const std::string flags = " --headless=new --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir=" +
                            (dir_ / "chromium-profile").string();
  // The DOM after parsing: tables and the three charts are there.
  const std::string dom = shell(binary + flags + " --dump-dom '" + url + "' 2>/dev/null");
  EXPECT_NE(dom.find("<h1>OAE report"), std::string::npos) << dom.substr(0, 300);
  size_t charts = 0;
  for (size_t at = dom.find("<svg"); at != std::string::npos; at = dom.find("<svg", at + 1)) ++charts;
  EXPECT_EQ(charts, 3u);
  EXPECT_NE(dom.find("<polyline"), std::string::npos);
  // And it paints: a screenshot of the page.
  const auto png = dir_ / "report.png";
  shell(binary + flags + " --window-size=1000,2400 --screenshot=" + png.string() + " '" + url + "' 2>/dev/null");
  ASSERT_TRUE(std::filesystem::exists(png));
  EXPECT_GT(std::filesystem::file_size(png), 20000u);
}

TEST(OaeCli, BadArgumentsAreClearErrors) {
  const std::string model = test::shared_path("models/tiny-llama-spm.gguf").string();
  const std::string data = test::shared_path("data/squad-dev-v1.1-super-bowl-50.json").string();
  auto result = run_frugal({"oae", "run", "-m", model, "--dataset", data, "--methods", "cag,magic"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("unknown OAE method 'magic'"), std::string::npos) << result.err;
  result = run_frugal({"oae", "run", "-m", model, "--dataset", data, "--methods", "cag@q5_1"});
  EXPECT_NE(result.err.find("cag@TYPE"), std::string::npos) << result.err;
  result = run_frugal({"oae", "run", "-m", model, "--dataset", model});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("not valid JSON"), std::string::npos) << result.err;
}

// The demo model on its own kind of world (examples/demo-world-hotpot.json):
// the knowledge, not the model, answers (closed book scores nothing); CAG and
// long context see the same prompt, so they give the same answers; the
// methods that read documents answer most questions.
TEST(OaeDemoModel, KnowledgeAnswersAndCagEqualsLongContext) {
  const auto dir = test::scratch_dir("oae-demo");
  const auto result = run_frugal({"oae", "run", "-t", "2", "--dataset",
                                  test::source_path("examples/demo-world-hotpot.json").string(), "--size", "small",
                                  "--n-questions", "20", "--estimate-energy", "-q", "--out", dir.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.err.find("using the built-in demo model"), std::string::npos) << result.err;
  const auto report = nlohmann::json::parse(read_file(dir / "report.json"));
  std::map<std::string, nlohmann::json> by_name;
  for (const auto& m : report["methods"]) by_name[m["name"]] = m;
  ASSERT_EQ(by_name.size(), 4u);
  EXPECT_EQ(report["dataset"]["questions"], 20);
  EXPECT_LT(by_name["closed"]["quality"]["exact_match"].get<double>(), 0.1);
  for (const char* name : {"cag", "rag-bm25", "long"}) {
    EXPECT_GE(by_name[name]["quality"]["exact_match"].get<double>(), 0.6) << name;
  }
  const auto& cag = by_name["cag"]["questions"];
  const auto& long_context = by_name["long"]["questions"];
  ASSERT_EQ(cag.size(), long_context.size());
  for (size_t i = 0; i < cag.size(); ++i) EXPECT_EQ(cag[i]["answer"], long_context[i]["answer"]) << i;
  std::filesystem::remove_all(dir);
}

// The KV type as a knob of CAG: cag@q8_0 keeps 34/64 of the default F16
// cache's bytes and answers (nearly) as it does; each is a method of the
// report.
TEST(OaeDemoModel, KvTypesAreMethodsOfTheReport) {
  const auto dir = test::scratch_dir("oae-kv-types");
  const auto result = run_frugal({"oae", "run", "-t", "2", "--dataset",
                                  test::source_path("examples/demo-world-hotpot.json").string(), "--size", "small",
                                  "--n-questions", "10", "--methods", "cag,cag@q8_0,cag@q4_h", "--estimate-energy",
                                  "-q", "--out", dir.string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto report = nlohmann::json::parse(read_file(dir / "report.json"));
  std::map<std::string, nlohmann::json> by_name;
  for (const auto& m : report["methods"]) by_name[m["name"]] = m;
  ASSERT_EQ(by_name.size(), 3u);
  const double f16 = by_name["cag"]["memory"]["kv_bytes"].get<double>();
  EXPECT_EQ(by_name["cag@q8_0"]["memory"]["kv_bytes"].get<double>(), f16 / 64 * 34);
  EXPECT_EQ(by_name["cag@q4_h"]["memory"]["kv_bytes"].get<double>(), f16 / 64 * 18);
  EXPECT_GE(by_name["cag@q8_0"]["quality"]["exact_match"].get<double>(),
            by_name["cag"]["quality"]["exact_match"].get<double>() - 0.1);
  EXPECT_NE(read_file(dir / "report.md").find("cag@q4_h"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace frugal
