// Shared pieces of the knowledge cache tests: a small corpus, a loaded model
// and the no-cache reference answer.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "frugal/generate.h"
#include "frugal/knowledge_cache.h"
#include "support/greedy_options.h"
#include "support/test_paths.h"

namespace frugal::test {

inline std::vector<Document> small_corpus() {
  return {
      {"clinic", "Harlow Clinic", "The Harlow Clinic is directed by Dr. Mira Osei. It is in Westbrook."},
      {"school", "Brook School", "The Brook School has 340 pupils. Its head teacher is Mr. Tom Adler."},
      {"office", "Town Office", "The town office opens at 9 am and closes at 4 pm on weekdays."},
      {"firm", "Osei and Sons", "Osei and Sons repair bicycles in Westbrook since 1998."},
  };
}

struct LoadedTestModel {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
};

inline LoadedTestModel load_test_model(const std::string& name = "models/mini-llama-spm-q8_0.gguf") {
  LoadedTestModel loaded;
  loaded.model = Model::load(shared_path(name), {.threads = 2});
  loaded.tokenizer = Tokenizer::from_gguf(loaded.model->file());
  return loaded;
}

// The baseline: the same prompt prefilled from scratch in a fresh cache.
inline std::vector<TokenId> answer_without_cache(Model& model, const Tokenizer& tokenizer,
                                                 const std::vector<TokenId>& prompt, int32_t tokens = 16) {
  KvCache fresh(model.config(), 1024);
  return generate(model, tokenizer, fresh, prompt, greedy(tokens)).tokens;
}

}  // namespace frugal::test
