// --json-schema, --grammar and --grammar-file through the CLI: answers that
// parse and follow the constraint, and one clear line for what is refused.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "support/cli_runner.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using test::run_frugal;

TEST(GrammarCli, SchemaAndGrammarFlagsConstrainTheAnswer) {
  const auto dir = test::scratch_dir("grammar-cli");
  const std::string docs = test::source_path("examples/town").string();
  auto result = run_frugal({"ask", "-t", "2", "--docs", docs, "Who directs the Harlow Clinic?", "-n", "120", "--json",
                            "--json-schema",
                            R"({"type":"object","properties":{"name":{"type":"string","maxLength":30},)"
                            R"("sure":{"type":"boolean"}},"required":["name","sure"]})"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto out = nlohmann::json::parse(result.out);
  const auto answer = nlohmann::json::parse(out["answer"].get<std::string>());
  EXPECT_TRUE(answer["name"].is_string());
  EXPECT_TRUE(answer["sure"].is_boolean());

  std::ofstream(dir / "yes-no.gbnf") << "# a yes or a no, then a number\nroot ::= (\"yes\" | \"no\") \" \" [0-9]{1,2}\n";
  result = run_frugal({"run", "-t", "2", "-p", "Is it open?", "-n", "20", "-q", "--grammar-file",
                       (dir / "yes-no.gbnf").string()});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(std::regex_match(result.out, std::regex("(yes|no) [0-9]{1,2}\n?"))) << result.out;

  result = run_frugal({"run", "-t", "2", "-p", "x", "--json-schema", R"({"type":"string","format":"email"})"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("format"), std::string::npos) << result.err;
  result = run_frugal({"run", "-t", "2", "-p", "x", "--grammar", "root ::= [z-a]"});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_NE(result.err.find("line 1"), std::string::npos) << result.err;
  result = run_frugal({"run", "-t", "2", "-p", "x", "--grammar", "root ::= \"a\"", "--json-schema", "{}"});
  EXPECT_NE(result.exit_code, 0);
}

}  // namespace
}  // namespace frugal
