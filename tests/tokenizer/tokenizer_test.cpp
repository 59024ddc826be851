// Tokenizer behaviour beyond the vocab vectors: reference fixtures (BOS and
// special tokens), pieces, decoding, end-of-generation, UTF-8 streaming,
// metadata errors and speed.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "frugal/error.h"
#include "frugal/gguf.h"
#include "frugal/tokenizer.h"
#include "tokenizer/tokenizer_test_util.h"

namespace frugal::test {
namespace {

const Tokenizer& vocab(const std::string& name) { return shared_tokenizer("vocab/ggml-vocab-" + name + ".gguf"); }

// --- reference fixtures: prompt -> tokens with BOS and special parsing -------

class ReferenceFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceFixture, TokensMatch) {
  const std::string model = GetParam();
  const Tokenizer& tok = shared_tokenizer("models/" + model + ".gguf");
  std::ifstream in(shared_path("fixtures/reference/" + model + ".jsonl"));
  ASSERT_TRUE(in.good()) << model;
  std::string line;
  int count = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto record = nlohmann::json::parse(line);
    const std::string prompt = record.at("prompt").get<std::string>();
    const std::vector<TokenId> expected = record.at("tokens").get<std::vector<TokenId>>();
    const std::vector<TokenId> actual = tok.encode(prompt, true, true);
    EXPECT_EQ(ids_to_string(actual), ids_to_string(expected)) << model << " prompt \"" << printable(prompt) << "\"";
    EXPECT_EQ(tok.decode(actual), prompt) << model;
    ++count;
  }
  EXPECT_EQ(count, 5) << model;
}

INSTANTIATE_TEST_SUITE_P(Models, ReferenceFixture,
                         ::testing::Values("tiny-llama-spm", "tiny-qwen2-gpt2", "mini-llama-spm-q8_0"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

// --- metadata ---------------------------------------------------------------

TEST(Tokenizer, MetadataOfSpm) {
  const Tokenizer& tok = vocab("llama-spm");
  EXPECT_EQ(tok.model_name(), "llama");
  EXPECT_EQ(tok.vocab_size(), 32000u);
  EXPECT_EQ(tok.bos(), 1);
  EXPECT_EQ(tok.eos(), 2);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_FALSE(tok.add_eos());
  EXPECT_EQ(tok.token_attribute(1), TokenAttribute::Control);
  EXPECT_EQ(tok.token_attribute(13), TokenAttribute::Byte);
  EXPECT_EQ(tok.find_token("<0x0A>"), 13);
  EXPECT_EQ(tok.find_token("no such token"), -1);
  EXPECT_EQ(tok.encode("Hello", true, false).front(), 1);
  EXPECT_EQ(tok.encode("", true, false), std::vector<TokenId>{1});
  EXPECT_TRUE(tok.encode("", false, false).empty());
}

TEST(Tokenizer, MetadataOfBpe) {
  const Tokenizer& tok = vocab("gpt-2");
  EXPECT_EQ(tok.model_name(), "gpt2");
  EXPECT_EQ(tok.pre_tokenizer(), "gpt-2");
  EXPECT_FALSE(tok.add_bos());
  EXPECT_EQ(tok.bos(), 50256);
  EXPECT_EQ(tok.encode("Hello", true, false), tok.encode("Hello", false, false));
  EXPECT_EQ(vocab("gpt-neox").pre_tokenizer(), "default");  // no tokenizer.ggml.pre key
}

TEST(Tokenizer, BertAddsClsAndSep) {
  const Tokenizer& tok = vocab("bert-bge");
  const std::vector<TokenId> ids = tok.encode("Hello World!", true, false);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 101);
  EXPECT_EQ(ids.back(), 102);
  // WordPiece pieces are word-initial (" x") or continuations ("x"); punctuation is a word of its own.
  EXPECT_EQ(tok.decode(tok.encode("Hello World!", false, false)), "hello world !");
}

// --- special tokens ---------------------------------------------------------

TEST(Tokenizer, SpecialTokensParsedOnlyWhenAsked) {
  const Tokenizer& tok = vocab("gpt-2");
  const std::vector<TokenId> parsed = tok.encode("Hi<|endoftext|>there", false, true);
  EXPECT_NE(std::find(parsed.begin(), parsed.end(), 50256), parsed.end());
  const std::vector<TokenId> plain = tok.encode("Hi<|endoftext|>there", false, false);
  EXPECT_EQ(std::find(plain.begin(), plain.end(), 50256), plain.end());
  EXPECT_EQ(tok.decode(plain), "Hi<|endoftext|>there");
  EXPECT_EQ(tok.decode(parsed), "Hithere");
  EXPECT_EQ(tok.decode(parsed, true), "Hi<|endoftext|>there");
}

TEST(Tokenizer, SpmSpacePrefixAfterSpecialToken) {
  const Tokenizer& tok = vocab("llama-spm");
  const std::vector<TokenId> a = tok.encode("<s>Hello", false, true);
  const std::vector<TokenId> b = tok.encode("Hello", true, false);
  EXPECT_EQ(a, b);  // "<s>" becomes BOS and "Hello" still gets the SentencePiece space
  EXPECT_EQ(tok.decode(a), "Hello");
  EXPECT_EQ(tok.decode(a, true), "<s>Hello");
}

TEST(Tokenizer, EndOfGeneration) {
  EXPECT_TRUE(vocab("gpt-2").is_end_of_generation(50256));
  EXPECT_TRUE(vocab("llama-spm").is_end_of_generation(2));
  EXPECT_FALSE(vocab("llama-spm").is_end_of_generation(1));
  EXPECT_FALSE(vocab("llama-spm").is_end_of_generation(13));
  const Tokenizer& phi3 = vocab("phi-3");
  EXPECT_TRUE(phi3.is_end_of_generation(phi3.find_token("<|end|>")));
  EXPECT_TRUE(phi3.is_end_of_generation(phi3.find_token("<|endoftext|>")));
  EXPECT_FALSE(phi3.is_end_of_generation(phi3.find_token("<|user|>")));
  const Tokenizer& coder = vocab("deepseek-coder");
  EXPECT_TRUE(coder.is_end_of_generation(coder.find_token("<｜end▁of▁sentence｜>")));
  EXPECT_FALSE(coder.is_end_of_generation(-1));
}

// --- pieces and decoding ----------------------------------------------------

TEST(Tokenizer, PiecesOfSpecialAndByteTokens) {
  const Tokenizer& spm = vocab("llama-spm");
  EXPECT_EQ(spm.token_to_piece(13), "\n");                         // <0x0A>
  EXPECT_EQ(spm.token_to_piece(spm.find_token("<0xE6>")), "\xE6");  // part of a UTF-8 sequence
  EXPECT_EQ(spm.token_to_piece(1), "");
  EXPECT_EQ(spm.token_to_piece(1, true), "<s>");
  EXPECT_EQ(spm.token_to_piece(spm.find_token("▁the")), " the");
  const Tokenizer& gpt2 = vocab("gpt-2");
  EXPECT_EQ(gpt2.token_to_piece(gpt2.find_token("Ġthe")), " the");
  EXPECT_EQ(gpt2.token_to_piece(198), "\n");
  EXPECT_EQ(gpt2.token_to_piece(gpt2.find_token("Ã")), "\xC3");  // a lone byte of a UTF-8 sequence
  EXPECT_THROW(gpt2.token_to_piece(-1), Error);
  EXPECT_THROW(gpt2.token_to_piece(static_cast<TokenId>(gpt2.vocab_size())), Error);
}

TEST(Tokenizer, SpmDecodeKeepsExtraLeadingSpaces) {
  const Tokenizer& tok = vocab("llama-spm");
  for (const std::string text : {"Hello", " Hello", "  Hello  world ", "\nline", "a\n\n b"}) {
    EXPECT_EQ(tok.decode(tok.encode(text, false, false)), text);
    EXPECT_EQ(tok.decode(tok.encode(text, true, false)), text);
  }
}

// Vocabularies without test vectors: they load and round-trip.
TEST(Tokenizer, BaichuanAndNeoxRoundTrip) {
  for (const char* name : {"baichuan", "gpt-neox"}) {
    const Tokenizer& tok = vocab(name);
    for (const std::string text : {"Hello world", " leading space", "multiple   spaces\n\ttabs\r\n",
                                   "Ünïcödé façade — naïve café, 東京 and 🙂 12345", "def f(x):\n    return x**2\n",
                                   ""}) {
      const std::vector<TokenId> ids = tok.encode(text, true, false);
      EXPECT_EQ(tok.decode(ids), text) << name << " \"" << printable(text) << "\"";
      for (TokenId id : ids) EXPECT_LT(static_cast<size_t>(id), tok.vocab_size());
    }
  }
  EXPECT_EQ(vocab("baichuan").model_name(), "llama");
  EXPECT_EQ(vocab("gpt-neox").encode("Hello world", false, false).size(), 2u);
}

TEST(Tokenizer, InvalidUtf8IsTokenizedWithoutCrashing) {
  const std::string bad = "ok \xFF\xC3 end";
  EXPECT_FALSE(vocab("gpt-2").encode(bad, false, false).empty());
  const Tokenizer& spm = vocab("llama-spm");
  EXPECT_FALSE(spm.encode(bad, false, false).empty());
  // A stray byte at the end survives through byte fallback. (Inside the text,
  // SentencePiece groups it with the following bytes as llama.cpp does, which
  // can split an escaped space into byte tokens.)
  EXPECT_EQ(spm.decode(spm.encode("ok \xFF", false, false)), "ok \xFF");
}

// --- UTF-8 streaming --------------------------------------------------------

TEST(Utf8StreamBuffer, HoldsIncompleteSequences) {
  Utf8StreamBuffer buf;
  EXPECT_EQ(buf.push("a"), "a");
  EXPECT_EQ(buf.push("\xE6"), "");
  EXPECT_EQ(buf.push("\x9D"), "");
  EXPECT_EQ(buf.push("\xB1x"), "\xE6\x9D\xB1x");  // 東
  EXPECT_EQ(buf.push("b\xF0\x9F"), "b");
  EXPECT_EQ(buf.push("\x99\x82"), "\xF0\x9F\x99\x82");  // 🙂
  EXPECT_EQ(buf.push("\xC3"), "");
  EXPECT_EQ(buf.flush(), "\xC3");  // an incomplete tail comes out as is
  EXPECT_EQ(buf.flush(), "");
  EXPECT_EQ(buf.push("\x80z"), "\x80z");  // stray continuation bytes are not held
}

TEST(Utf8StreamBuffer, StreamsTokenPieces) {
  const Tokenizer& tok = vocab("llama-spm");
  const std::string text = "Ünïcödé 東京 and 🙂 emoji";
  const std::vector<TokenId> ids = tok.encode(text, false, false);
  Utf8StreamBuffer buf;
  std::string out;
  for (TokenId id : ids) {
    const std::string chunk = buf.push(tok.token_to_piece(id));
    // Every chunk handed out is complete UTF-8.
    for (size_t i = 0; i < chunk.size();) {
      const auto lead = static_cast<uint8_t>(chunk[i]);
      const size_t len = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
      ASSERT_LE(i + len, chunk.size()) << "split sequence in chunk";
      i += len;
    }
    out += chunk;
  }
  out += buf.flush();
  EXPECT_EQ(out, " " + text);  // pieces keep SentencePiece's leading space; decode() drops it
  EXPECT_EQ(tok.decode(ids), text);
}

// --- errors -----------------------------------------------------------------

GgufFile parse_metadata(const GgufWriter& writer, std::vector<uint8_t>& storage) {
  storage = writer.to_bytes();
  return GgufFile::parse(storage, "synthetic.gguf");
}

TEST(Tokenizer, RejectsUnknownModelsAndBadMetadata) {
  std::vector<uint8_t> storage;
  {
    GgufWriter w;
    w.set("general.architecture", GgufValue::string("llama"));
    EXPECT_THROW(Tokenizer::from_gguf(parse_metadata(w, storage)), FormatError);
  }
  {
    GgufWriter w;
    w.set("tokenizer.ggml.model", GgufValue::string("t5"));
    w.set("tokenizer.ggml.tokens", GgufValue::string_array({"a", "b"}));
    EXPECT_THROW(Tokenizer::from_gguf(parse_metadata(w, storage)), UnsupportedError);
  }
  {
    GgufWriter w;
    w.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
    w.set("tokenizer.ggml.pre", GgufValue::string("no-such-pre"));
    w.set("tokenizer.ggml.tokens", GgufValue::string_array({"a", "b"}));
    w.set("tokenizer.ggml.merges", GgufValue::string_array({"a b"}));
    EXPECT_THROW(Tokenizer::from_gguf(parse_metadata(w, storage)), UnsupportedError);
  }
  {
    GgufWriter w;
    w.set("tokenizer.ggml.model", GgufValue::string("llama"));
    w.set("tokenizer.ggml.tokens", GgufValue::string_array({"<unk>", "<s>", "</s>", "a"}));
    w.set("tokenizer.ggml.scores", GgufValue::f32_array({0.0f, 0.0f}));  // too short
    EXPECT_THROW(Tokenizer::from_gguf(parse_metadata(w, storage)), FormatError);
  }
  {
    GgufWriter w;
    w.set("tokenizer.ggml.model", GgufValue::string("llama"));
    w.set("tokenizer.ggml.tokens", GgufValue::string_array({"<unk>", "<s>", "</s>", "a", "a"}));
    EXPECT_THROW(Tokenizer::from_gguf(parse_metadata(w, storage)), FormatError);  // duplicate token
  }
  {
    GgufWriter w;
    w.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
    w.set("tokenizer.ggml.tokens", GgufValue::string_array({"a", "b"}));
    EXPECT_THROW(Tokenizer::from_gguf(parse_metadata(w, storage)), FormatError);  // no merges
  }
}

TEST(Tokenizer, TinySyntheticBpe) {
  GgufWriter w;
  w.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
  w.set("tokenizer.ggml.pre", GgufValue::string("gpt-2"));
  w.set("tokenizer.ggml.tokens", GgufValue::string_array({"a", "b", "ab", "Ġ", "Ġab", "<|end|>"}));
  w.set("tokenizer.ggml.token_type", GgufValue::i32_array({1, 1, 1, 1, 1, 3}));
  w.set("tokenizer.ggml.merges", GgufValue::string_array({"a b", "Ġ ab"}));
  w.set("tokenizer.ggml.eos_token_id", GgufValue::u32(5));
  std::vector<uint8_t> storage;
  const auto tok = Tokenizer::from_gguf(parse_metadata(w, storage));
  EXPECT_EQ(tok->encode("ab ab<|end|>", false, true), (std::vector<TokenId>{2, 4, 5}));
  EXPECT_EQ(tok->encode("ba", false, false), (std::vector<TokenId>{1, 0}));
  EXPECT_TRUE(tok->is_end_of_generation(5));
  EXPECT_EQ(tok->eos(), 5);
}

// --- speed ------------------------------------------------------------------

TEST(Tokenizer, LongPromptIsFast) {
  std::string text;
  while (text.size() < 12000) {
    text += "The quick brown fox jumps over the lazy dog, 12345 times; café 東京 🙂!\n    def f(x): return x\n";
  }
  for (const char* name : {"llama-spm", "gpt-2", "deepseek-llm", "bert-bge"}) {
    const Tokenizer& tok = vocab(name);
    const auto start = std::chrono::steady_clock::now();
    const std::vector<TokenId> ids = tok.encode(text, true, true);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    EXPECT_GT(ids.size(), 2000u) << name;
    EXPECT_LT(ms, 500.0) << name << ": " << ids.size() << " tokens";
    std::printf("[ perf     ] %s: %zu tokens in %.1f ms\n", name, ids.size(), ms);
  }
}

}  // namespace
}  // namespace frugal::test

namespace frugal::test {
namespace {

// Long runs of one character class stress the regex engine (JIT stack).
TEST(Tokenizer, LongRunsOfOneClass) {
  const std::vector<std::string> texts = {std::string(100000, ' ') + "a", std::string(100000, 'x'),
                                          std::string(60000, '7'), std::string(50000, '!') + "\n\n",
                                          std::string(30000, '\n') + " b"};
  for (const char* name : {"gpt-2", "falcon", "deepseek-llm", "deepseek-coder", "starcoder", "llama-spm"}) {
    const Tokenizer& tok = vocab(name);
    for (const std::string& text : texts) {
      const std::vector<TokenId> ids = tok.encode(text, false, false);
      EXPECT_EQ(tok.decode(ids), text) << name << " run of " << text.size() << " bytes";
    }
  }
}

}  // namespace
}  // namespace frugal::test
