// `frugal embed` and `frugal synth --arch bert`: a BERT file written by
// synth embeds texts (vectors of length 1, equal for equal texts); a
// generative model embeds as the server's /v1/embeddings does; a BERT file
// given to a generating command, or to serve without --embedding, says what
// to use.
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "support/cli_runner.h"
#include "support/test_paths.h"

namespace frugal {
namespace {

using test::run_frugal;

TEST(CliEmbed, EncoderAndGenerativeModelsGiveUnitVectors) {
  const std::string bert = (test::scratch_dir("embed-cli") / "bert.gguf").string();
  const auto synth = run_frugal({"synth", "--arch", "bert", "--vocab", test::shared_path("vocab/ggml-vocab-bert-bge.gguf"),
                                 "--type", "F16", "--embedding", "32", "--layers", "1", "--heads", "2", "--ffn", "64",
                                 "--context", "64", "-o", bert});
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  for (const std::string& model : {bert, test::shared_path("models/tiny-llama-spm.gguf").string()}) {
    const auto embedded = run_frugal({"embed", "-m", model, "-t", "1", "--json", "-p", "The clinic opens at 9.", "-p",
                                      "Rain", "-p", "The clinic opens at 9."});
    ASSERT_EQ(embedded.exit_code, 0) << embedded.err;
    const auto vectors = nlohmann::json::parse(embedded.out);
    ASSERT_EQ(vectors.size(), 3u);
    EXPECT_EQ(vectors[0], vectors[2]);
    EXPECT_NE(vectors[0], vectors[1]);
    double length = 0;
    for (const double x : vectors[1]) length += x * x;
    EXPECT_NEAR(std::sqrt(length), 1.0, 1e-5);
  }
  const auto run = run_frugal({"run", "-m", bert, "-p", "hi", "-n", "2"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.err.find("frugal embed"), std::string::npos) << run.err;
  const auto serve = run_frugal({"serve", "-m", bert, "--port", "0"});
  EXPECT_NE(serve.exit_code, 0);
  EXPECT_NE(serve.err.find("--embedding"), std::string::npos) << serve.err;
  const auto wrong = run_frugal({"serve", "--embedding", "-m", test::shared_path("models/tiny-llama-spm.gguf").string(),
                                 "--port", "0"});
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_NE(wrong.err.find("not an encoder"), std::string::npos) << wrong.err;
}

}  // namespace
}  // namespace frugal
