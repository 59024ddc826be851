// Knowledge caches answer exactly as the same prompt prefilled from scratch,
// survive a save/load round trip, and edits equal a rebuild.
#include <gtest/gtest.h>

#include <algorithm>

#include "frugal/quant.h"

#include <cmath>
#include <cstring>

#include "cag_test_support.h"
#include "frugal/error.h"

namespace frugal::test {
namespace {

const char* kQuestions[] = {"Who directs the Harlow Clinic?", "How many pupils does the Brook School have?",
                            "When does the town office open?"};

class KnowledgeCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { loaded_ = load_test_model(); }

  KnowledgeCache build(std::vector<Document> docs, KvTypes precision = KvPrecision::F32) {
    KnowledgeBuildOptions options;
    options.precision = precision;
    options.context = 1024;
    options.batch = 32;  // several batches, crossing document boundaries
    return KnowledgeCache::build(*loaded_.model, *loaded_.tokenizer, std::move(docs), options);
  }

  KnowledgeCache load(const std::filesystem::path& path, bool verify = true) {
    KnowledgeLoadOptions options;
    options.context = 1024;
    options.verify_checksum = verify;
    return KnowledgeCache::load(path, *loaded_.model, *loaded_.tokenizer, options);
  }

  // Every question answered from the cache equals the no-cache answer, token
  // for token.
  void expect_answers_match_no_cache(KnowledgeCache& cache) {
    for (const char* question : kQuestions) {
      const auto expected = answer_without_cache(*loaded_.model, *loaded_.tokenizer, cache.prompt_tokens(question));
      const auto answer = cache.ask(question, greedy());
      EXPECT_EQ(answer.tokens, expected) << question;
      EXPECT_EQ(answer.prompt_tokens, cache.prompt_tokens(question).size() - cache.tokens().size());
      EXPECT_EQ(cache.cache().size(), static_cast<int64_t>(cache.tokens().size())) << "not truncated back";
    }
  }

  // Largest difference between the keys/values of two caches' prefixes.
  static float max_kv_difference(KnowledgeCache& a, KnowledgeCache& b) {
    EXPECT_EQ(a.tokens().size(), b.tokens().size());
    float worst = 0;
    KvCache& x = a.cache();
    KvCache& y = b.cache();
    for (int64_t layer = 0; layer < x.layer_count(); ++layer) {
      for (int64_t position = 0; position < static_cast<int64_t>(a.tokens().size()); ++position) {
        for (bool keys : {true, false}) {
          const auto* p = static_cast<const float*>(keys ? x.key_row(layer, position) : x.value_row(layer, position));
          const auto* q = static_cast<const float*>(keys ? y.key_row(layer, position) : y.value_row(layer, position));
          for (size_t i = 0; i < x.row_elements(); ++i) worst = std::max(worst, std::fabs(p[i] - q[i]));
        }
      }
    }
    return worst;
  }

  LoadedTestModel loaded_;
};

TEST_F(KnowledgeCacheTest, AnswersEqualThePromptPrefilledFromScratch) {
  auto cache = build(small_corpus());
  expect_answers_match_no_cache(cache);
  // Asking again gives the same answer: the question was truncated away.
  EXPECT_EQ(cache.ask(kQuestions[0], greedy()).tokens, cache.ask(kQuestions[0], greedy()).tokens);
}

TEST_F(KnowledgeCacheTest, LogitsAfterTheQuestionMatchTheFullPrompt) {
  auto cache = build(small_corpus());
  const auto full = cache.prompt_tokens(kQuestions[1]);
  const std::vector<TokenId> question(full.begin() + static_cast<std::ptrdiff_t>(cache.tokens().size()), full.end());
  const auto cached = loaded_.model->forward(question, cache.cache());
  KvCache fresh(loaded_.model->config(), 1024);
  const auto reference = prefill(*loaded_.model, fresh, full, 512);
  ASSERT_EQ(cached.size(), reference.size());
  float worst = 0;
  for (size_t i = 0; i < cached.size(); ++i) worst = std::max(worst, std::fabs(cached[i] - reference[i]));
  EXPECT_LT(worst, 1e-3f);
}

TEST_F(KnowledgeCacheTest, SaveLoadRoundTripMapsTheFileAndAnswersTheSame) {
  const auto dir = scratch_dir("cag-roundtrip");
  auto built = build(small_corpus());
  built.save(dir / "kb.fkv");
  auto loaded = load(dir / "kb.fkv");
  EXPECT_TRUE(loaded.mapped());
  EXPECT_EQ(std::vector<TokenId>(loaded.tokens().begin(), loaded.tokens().end()),
            std::vector<TokenId>(built.tokens().begin(), built.tokens().end()));
  ASSERT_EQ(loaded.documents().size(), 4u);
  EXPECT_EQ(loaded.documents()[1].document.title, "Brook School");
  EXPECT_EQ(loaded.documents()[1].hash, document_hash(small_corpus()[1]));
  EXPECT_EQ(max_kv_difference(built, loaded), 0.0f);
  expect_answers_match_no_cache(loaded);
  // Without the checksum the same file loads to the same state.
  auto fast = load(dir / "kb.fkv", false);
  EXPECT_EQ(max_kv_difference(built, fast), 0.0f);
}

TEST_F(KnowledgeCacheTest, HalfPrecisionRoundTrip) {
  const auto dir = scratch_dir("cag-f16");
  auto built = build(small_corpus(), KvPrecision::F16);
  built.save(dir / "kb.fkv");
  auto loaded = load(dir / "kb.fkv");
  EXPECT_EQ(loaded.types(), KvPrecision::F16);
  EXPECT_EQ(loaded.kv_bytes(), built.kv_bytes());
  EXPECT_EQ(loaded.ask(kQuestions[0], greedy()).tokens, built.ask(kQuestions[0], greedy()).tokens);
}

// kb convert: an F32 cache stored as F16 without a prefill holds each row
// rounded to nearest (f32_to_f16, the reference conversion), half the bytes,
// survives saving, and converting back and forth again changes nothing.
TEST_F(KnowledgeCacheTest, ConvertStoresTheSameRowsInAnotherPrecision) {
  const auto dir = scratch_dir("cag-convert");
  auto f32 = build(small_corpus());
  auto f16 = build(small_corpus());
  f16.convert(KvPrecision::F16);
  EXPECT_EQ(f16.types(), KvPrecision::F16);
  EXPECT_EQ(2 * f16.kv_bytes(), f32.kv_bytes());
  KvCache& a = f32.cache();
  KvCache& b = f16.cache();
  for (int64_t layer = 0; layer < a.layer_count(); ++layer) {
    for (int64_t position = 0; position < static_cast<int64_t>(f32.tokens().size()); ++position) {
      for (bool keys : {true, false}) {
        const auto* x = static_cast<const float*>(keys ? a.key_row(layer, position) : a.value_row(layer, position));
        const auto* h = static_cast<const uint16_t*>(keys ? b.key_row(layer, position) : b.value_row(layer, position));
        for (size_t i = 0; i < a.row_elements(); ++i) ASSERT_EQ(h[i], f32_to_f16(x[i])) << layer << " " << position;
      }
    }
  }
  f16.save(dir / "kb16.fkv");
  auto loaded = load(dir / "kb16.fkv");
  EXPECT_EQ(loaded.types(), KvPrecision::F16);
  EXPECT_EQ(loaded.ask(kQuestions[0], greedy()).tokens, f16.ask(kQuestions[0], greedy()).tokens);
  auto back = load(dir / "kb16.fkv");
  back.convert(KvPrecision::F32);
  back.convert(KvPrecision::F16);
  for (int64_t layer = 0; layer < b.layer_count(); ++layer) {
    const auto* x = static_cast<const uint16_t*>(b.key_row(layer, 0));
    const auto* y = static_cast<const uint16_t*>(back.cache().key_row(layer, 0));
    ASSERT_TRUE(std::equal(x, x + b.row_elements() * f16.tokens().size(), y)) << "layer " << layer;
  }
  EXPECT_EQ(back.ask(kQuestions[0], greedy()).tokens, f16.ask(kQuestions[0], greedy()).tokens);
}

// Quantized caches: built in the type, saved and loaded as they are (the
// file's KV block shrinks by the type's bits), and a conversion from F32
// quantizes each row exactly as ggml's reference quantizer does.
TEST_F(KnowledgeCacheTest, QuantizedCachesRoundTripAndConvertAsGgmlQuantizes) {
  const auto dir = scratch_dir("cag-quantized");
  auto f32 = build(small_corpus());
  for (const auto& [precision, type] : {std::pair{KvPrecision::Q8_0, TensorType::Q8_0},
                                        std::pair{KvPrecision::Q4_0, TensorType::Q4_0},
                                        std::pair{KvPrecision::Q4_H, TensorType::Q4_0}}) {
    SCOPED_TRACE(std::string(kv_precision_name(precision)));
    auto built = build(small_corpus(), precision);
    const std::string name = std::string(kv_precision_name(precision)) + ".fkv";
    built.save(dir / name);
    auto loaded = load(dir / name);
    EXPECT_EQ(loaded.types(), precision);
    EXPECT_EQ(loaded.kv_bytes(), f32.kv_bytes() / 128 * (type == TensorType::Q8_0 ? 34 : 18));
    EXPECT_EQ(loaded.ask(kQuestions[0], greedy()).tokens, built.ask(kQuestions[0], greedy()).tokens);
    EXPECT_EQ(inspect_knowledge_cache(dir / name).precision, precision);

    if (precision == KvPrecision::Q4_H) continue;  // turned before quantizing: kv_rows_test checks it
    auto converted = build(small_corpus());
    converted.convert(precision);
    const KvCache& a = f32.cache();
    const size_t n = a.row_elements();
    std::vector<uint8_t> expected(converted.cache().value_row_bytes());
    for (int64_t layer = 0; layer < a.layer_count(); ++layer) {
      const auto* x = static_cast<const float*>(a.value_row(layer, 3));
      quantize_row(type, x, expected.data(), n);
      const auto* got = static_cast<const uint8_t*>(converted.cache().value_row(layer, 3));
      ASSERT_TRUE(std::equal(expected.begin(), expected.end(), got)) << "layer " << layer;
    }
  }
}

// Keys and values in different types: separate block sizes in the file,
// read back as written.
TEST_F(KnowledgeCacheTest, KeysAndValuesInDifferentTypesRoundTrip) {
  const auto dir = scratch_dir("cag-mixed");
  const KvTypes types(KvPrecision::Q8_0, KvPrecision::Q4_H);
  auto built = build(small_corpus(), types);
  built.save(dir / "kb.fkv");
  auto loaded = load(dir / "kb.fkv");
  EXPECT_EQ(loaded.types(), types);
  EXPECT_EQ(loaded.kv_bytes(), build(small_corpus()).kv_bytes() / 256 * (34 + 18));
  for (int64_t layer = 0; layer < built.cache().layer_count(); ++layer) {
    const size_t tokens = built.tokens().size();
    const auto* k0 = static_cast<const uint8_t*>(built.cache().key_row(layer, 0));
    const auto* k1 = static_cast<const uint8_t*>(loaded.cache().key_row(layer, 0));
    const auto* v0 = static_cast<const uint8_t*>(built.cache().value_row(layer, 0));
    const auto* v1 = static_cast<const uint8_t*>(loaded.cache().value_row(layer, 0));
    ASSERT_TRUE(std::equal(k0, k0 + tokens * built.cache().key_row_bytes(), k1)) << "layer " << layer;
    ASSERT_TRUE(std::equal(v0, v0 + tokens * built.cache().value_row_bytes(), v1)) << "layer " << layer;
  }
  EXPECT_EQ(loaded.ask(kQuestions[0], greedy()).tokens, built.ask(kQuestions[0], greedy()).tokens);
  EXPECT_EQ(inspect_knowledge_cache(dir / "kb.fkv").precision, types);
}

TEST_F(KnowledgeCacheTest, UpdateRecomputesFromTheChangedDocumentAndEqualsARebuild) {
  const auto dir = scratch_dir("cag-update");
  build(small_corpus()).save(dir / "kb.fkv");
  auto cache = load(dir / "kb.fkv");
  Document changed = small_corpus()[2];
  changed.text = "The town office opens at 7 am, closes at noon, and is shut on Fridays.";
  const auto report = cache.update({changed});
  auto corpus = small_corpus();
  corpus[2] = changed;
  auto rebuilt = build(corpus);
  EXPECT_EQ(report.first_changed_document, 2u);
  EXPECT_EQ(report.kept_tokens, static_cast<size_t>(rebuilt.documents()[2].first_token));
  EXPECT_EQ(report.full_rebuild_tokens, rebuilt.tokens().size());
  EXPECT_EQ(report.recomputed_tokens, rebuilt.tokens().size() - report.kept_tokens);
  EXPECT_LT(max_kv_difference(cache, rebuilt), 1e-4f);
  expect_answers_match_no_cache(cache);
  for (const char* question : kQuestions) {
    EXPECT_EQ(cache.ask(question, greedy()).tokens, rebuilt.ask(question, greedy()).tokens) << question;
  }
  // And through the file: save over the mapped original, load again.
  cache.save(dir / "kb.fkv");
  auto reloaded = load(dir / "kb.fkv");
  EXPECT_LT(max_kv_difference(reloaded, rebuilt), 1e-4f);
  EXPECT_EQ(reloaded.documents()[2].document.text, changed.text);
}

TEST_F(KnowledgeCacheTest, AddInOrderAppendOnlyAndRemoveEqualRebuilds) {
  auto corpus = small_corpus();
  const Document extra{"depot", "Bus Depot", "The bus depot on Mill Road has 12 buses."};

  auto cache = build(corpus);
  const auto added = cache.add({extra}, false);
  // Inserted before the first id that sorts after "depot" ("school").
  std::vector<std::string> ids;
  for (const auto& doc : cache.documents()) ids.push_back(doc.document.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"clinic", "depot", "school", "office", "firm"}));
  EXPECT_EQ(added.first_changed_document, 1u);
  std::vector<Document> in_order = {corpus[0], extra, corpus[1], corpus[2], corpus[3]};
  auto rebuilt = build(in_order);
  EXPECT_LT(max_kv_difference(cache, rebuilt), 1e-4f);
  EXPECT_EQ(cache.ask(kQuestions[2], greedy()).tokens, rebuilt.ask(kQuestions[2], greedy()).tokens);

  auto appended = build(corpus);
  const auto report = appended.add({extra}, true);
  EXPECT_EQ(report.first_changed_document, 4u);
  EXPECT_EQ(report.recomputed_tokens, static_cast<size_t>(appended.documents()[4].token_count));
  auto corpus_appended = corpus;
  corpus_appended.push_back(extra);
  auto rebuilt_appended = build(corpus_appended);
  EXPECT_LT(max_kv_difference(appended, rebuilt_appended), 1e-4f);
  expect_answers_match_no_cache(appended);

  const std::string remove_ids[] = {"school"};
  const auto removed = appended.remove(remove_ids);
  EXPECT_EQ(removed.first_changed_document, 1u);
  auto rebuilt_removed = build({corpus[0], corpus[2], corpus[3], extra});
  EXPECT_LT(max_kv_difference(appended, rebuilt_removed), 1e-4f);
  EXPECT_EQ(appended.ask(kQuestions[0], greedy()).tokens, rebuilt_removed.ask(kQuestions[0], greedy()).tokens);
}

TEST_F(KnowledgeCacheTest, EditsRefuseUnknownAndDuplicateIds) {
  auto cache = build(small_corpus());
  EXPECT_THROW(cache.add({small_corpus()[0]}, false), Error);
  EXPECT_THROW(cache.update({{"nope", "x", "y"}}), Error);
  const std::string missing[] = {"nope"};
  EXPECT_THROW(cache.remove(missing), Error);
  // Nothing changed: nothing recomputed.
  const auto report = cache.update({small_corpus()[1]});
  EXPECT_EQ(report.recomputed_tokens, 0u);
  EXPECT_EQ(report.first_changed_document, 4u);
}

TEST_F(KnowledgeCacheTest, RepetitionPenaltySeesTheKnowledgeAsTheBaselineDoes) {
  auto cache = build(small_corpus());
  GenerationOptions options = greedy(16);
  options.sampling.repeat_penalty = 1.5f;
  options.sampling.repeat_last_n = 64;  // reaches back into the documents
  const auto prompt = cache.prompt_tokens(kQuestions[0]);
  KvCache fresh(loaded_.model->config(), 1024);
  const auto expected = generate(*loaded_.model, *loaded_.tokenizer, fresh, prompt, options).tokens;
  EXPECT_EQ(cache.ask(kQuestions[0], options).tokens, expected);
}

TEST_F(KnowledgeCacheTest, AFailedEditLeavesTheDocumentsBeforeTheChange) {
  auto cache = build(small_corpus());
  Document changed = small_corpus()[2];
  changed.text = "Changed.";
  const PrefillProgress cancel = [](size_t done, size_t) {
    if (done > 0) throw Error("cancelled");
  };
  EXPECT_THROW(cache.update({changed}, cancel), Error);
  ASSERT_EQ(cache.documents().size(), 2u);
  EXPECT_EQ(cache.tokens().size(), static_cast<size_t>(cache.documents()[1].first_token +
                                                       cache.documents()[1].token_count));
  auto rebuilt = build({small_corpus()[0], small_corpus()[1]});
  EXPECT_EQ(cache.ask(kQuestions[0], greedy()).tokens, rebuilt.ask(kQuestions[0], greedy()).tokens);
}

TEST_F(KnowledgeCacheTest, CorpusOverTheContextSaysByHowMuchPerDocument) {
  KnowledgeBuildOptions options;
  options.context = 96;
  options.reserve = 16;
  try {
    KnowledgeCache::build(*loaded_.model, *loaded_.tokenizer, small_corpus(), options);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("too many"), std::string::npos) << message;
    EXPECT_NE(message.find("school ("), std::string::npos) << message;
    EXPECT_NE(message.find("context of 96"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace frugal::test
