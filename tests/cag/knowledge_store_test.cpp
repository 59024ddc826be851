// Several knowledge caches pinned in one scheduler's store: shared
// beginnings stored once, answers equal to the no-cache prompt, question
// branches and removed caches freed.
#include <gtest/gtest.h>

#include "cag_test_support.h"
#include "frugal/error.h"
#include "frugal/knowledge_store.h"
#include "frugal/scheduler.h"

namespace frugal::test {
namespace {

class KnowledgeStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loaded_ = load_test_model();
    dir_ = scratch_dir("cag-store");
    auto corpus = small_corpus();
    save({corpus[0], corpus[1]}, "health.fkv", KvPrecision::F32);
    save({corpus[2], corpus[3]}, "town.fkv", KvPrecision::F16);
  }

  void save(std::vector<Document> docs, const std::string& file, KvPrecision precision) {
    KnowledgeBuildOptions options;
    options.context = 512;
    options.precision = precision;
    auto cache = KnowledgeCache::build(*loaded_.model, *loaded_.tokenizer, std::move(docs), options);
    header_tokens_ = cache.documents().front().first_token;
    cache.save(dir_ / file);
  }

  // Nothing is kept after an answer (cache_bytes 0): what the store holds is the caches.
  std::unique_ptr<GenerationScheduler> scheduler() const {
    return std::make_unique<GenerationScheduler>(*loaded_.model, *loaded_.tokenizer,
                                                 SchedulerOptions{.parallel = 2, .context = 1024, .cache_bytes = 0});
  }

  LoadedTestModel loaded_;
  std::filesystem::path dir_;
  int64_t header_tokens_ = 0;
};

TEST_F(KnowledgeStoreTest, SharedSystemPrefixIsStoredOnce) {
  const auto batch = scheduler();
  KnowledgeStore store(*loaded_.model, *loaded_.tokenizer, *batch);
  EXPECT_EQ(store.add("health", dir_ / "health.fkv"), 0u);
  const size_t shared = store.add("town", dir_ / "town.fkv");
  // The same header (BOS + system text); the documents differ from the first token on.
  EXPECT_GE(shared, static_cast<size_t>(header_tokens_));
  const size_t slot = loaded_.model->kv_layout().slot_bytes();
  EXPECT_EQ(store.stats().live_bytes, store.unshared_bytes() - shared * slot);
  EXPECT_EQ(store.names(), (std::vector<std::string>{"health", "town"}));
  EXPECT_THROW(store.add("town", dir_ / "town.fkv"), Error);
}

TEST_F(KnowledgeStoreTest, AnswersEqualTheNoCachePromptAndQuestionsAreFreed) {
  const auto batch = scheduler();
  KnowledgeStore store(*loaded_.model, *loaded_.tokenizer, *batch);
  store.add("health", dir_ / "health.fkv");
  store.add("town", dir_ / "town.fkv");
  const size_t before = store.stats().live_bytes;
  const std::pair<const char*, const char*> questions[] = {
      {"health", "Who directs the Harlow Clinic?"}, {"town", "When does the town office open?"},
      {"health", "How many pupils are there?"}};
  for (const auto& [name, question] : questions) {
    const auto answer = store.ask(name, question, greedy());
    const auto expected =
        answer_without_cache(*loaded_.model, *loaded_.tokenizer, store.prompt_tokens(name, question));
    if (std::string(name) == "health") {
      EXPECT_EQ(answer.tokens, expected) << question;
    } else {
      // The town cache was saved in F16 and is widened to F32 in the store;
      // the baseline computes in F32 all along, so only the start must agree.
      EXPECT_EQ(answer.tokens.front(), expected.front()) << question;
    }
    EXPECT_EQ(store.stats().live_bytes, before) << "the question's branch was not freed";
  }
  EXPECT_GT(store.stats().peak_bytes, before);
  store.remove("health");
  EXPECT_LT(store.stats().live_bytes, before);
  EXPECT_THROW(store.ask("health", "Who?", greedy()), Error);
}

TEST_F(KnowledgeStoreTest, AStoreThatGoesUnpinsItsCaches) {
  const auto batch = scheduler();
  {
    KnowledgeStore store(*loaded_.model, *loaded_.tokenizer, *batch);
    store.add("health", dir_ / "health.fkv");
    EXPECT_GT(batch->stats().store.live_bytes, 0u);
    EXPECT_EQ(store.get("health").tokens.size() * loaded_.model->kv_layout().slot_bytes(),
              batch->stats().store.live_bytes);
    EXPECT_THROW(store.get("town"), Error);
  }
  EXPECT_EQ(batch->stats().store.live_bytes, 0u);
  const std::vector<TokenId> never_pinned = {1, 2, 3};
  EXPECT_THROW(batch->unpin_prefix(never_pinned), Error);
}

}  // namespace
}  // namespace frugal::test
