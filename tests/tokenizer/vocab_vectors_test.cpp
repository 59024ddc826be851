// The ggml vocab test vectors: every piece of X.gguf.inp, tokenized without
// BOS/EOS and without special-token parsing, gives line i of X.gguf.out.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tokenizer/tokenizer_test_util.h"

namespace frugal::test {
namespace {

class VocabVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabVectors, MatchReferenceIds) {
  const std::string vocab_file = "ggml-vocab-" + GetParam() + ".gguf";
  const Tokenizer& tok = shared_tokenizer("vocab/" + vocab_file);
  const std::vector<VocabCase> cases = load_vocab_cases(vocab_file);
  ASSERT_GE(cases.size(), 40u) << vocab_file;
  size_t failures = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::vector<TokenId> actual = tok.encode(cases[i].input, false, false);
    if (actual != cases[i].expected) {
      ++failures;
      ADD_FAILURE() << vocab_file << " piece " << i << "\n  input:    \"" << printable(cases[i].input)
                    << "\"\n  expected: " << ids_to_string(cases[i].expected)
                    << "\n  actual:   " << ids_to_string(actual);
    }
  }
  EXPECT_EQ(failures, 0u) << vocab_file << ": " << failures << " of " << cases.size() << " pieces differ";
}

// decode(encode(x)) == x where the tokenizer is lossless (not WordPiece,
// which lowercases and drops accents and whitespace).
TEST_P(VocabVectors, DecodeRoundTrips) {
  if (GetParam() == "bert-bge") GTEST_SKIP() << "WordPiece normalisation is lossy";
  const std::string vocab_file = "ggml-vocab-" + GetParam() + ".gguf";
  const Tokenizer& tok = shared_tokenizer("vocab/" + vocab_file);
  for (const VocabCase& c : load_vocab_cases(vocab_file)) {
    const std::vector<TokenId> ids = tok.encode(c.input, false, false);
    EXPECT_EQ(tok.decode(ids), c.input) << vocab_file << " input \"" << printable(c.input) << "\"";
    // With BOS (where the vocabulary adds one) the text is the same.
    const std::vector<TokenId> with_bos = tok.encode(c.input, true, false);
    EXPECT_EQ(tok.decode(with_bos), c.input) << vocab_file << " (add_special) input \"" << printable(c.input)
                                             << "\"";
  }
}

INSTANTIATE_TEST_SUITE_P(Vocab, VocabVectors,
                         ::testing::Values("llama-spm", "phi-3", "gpt-2", "mpt", "falcon", "starcoder", "refact",
                                           "deepseek-llm", "deepseek-coder", "bert-bge"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace frugal::test
