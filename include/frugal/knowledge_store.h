// Several knowledge caches on one model in one process, held in one KvTrie.
// Knowledge prefixes that begin alike (same layout and system text) share
// the slots of their common beginning; each question is a branch off its
// cache's prefix, freed as soon as its answer is done. A cache's keys and
// values are copied in once, whatever the number of questions over it.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/generate.h"
#include "frugal/knowledge_cache.h"
#include "frugal/kv_trie.h"
#include "frugal/model.h"

namespace frugal {

class KnowledgeStore {
 public:
  // `budget_bytes` bounds the trie (0: no bound).
  KnowledgeStore(Model& model, const Tokenizer& tokenizer, size_t budget_bytes = 0);

  // Loads a `.fkv` file (checked as KnowledgeCache::load checks it) under
  // `name`; returns how many of its tokens were already in the store (shared
  // with caches added before). Throws Error for a name already used.
  size_t add(const std::string& name, const std::filesystem::path& path, const KnowledgeLoadOptions& options = {});
  void remove(const std::string& name);
  bool contains(const std::string& name) const;
  std::vector<std::string> names() const;

  // Answers over the named cache; the question's branch is freed afterwards.
  GenerationResult ask(const std::string& name, std::string_view question, const GenerationOptions& options,
                       const TextCallback& on_text = {});
  // Knowledge prefix + question tokens: the no-cache prompt.
  std::vector<TokenId> prompt_tokens(const std::string& name, std::string_view question) const;

  KvTrieStats stats() const { return trie_.stats(); }
  // Bytes the caches' keys and values would take one by one (no sharing).
  size_t unshared_bytes() const;

 private:
  struct Entry {
    KvNode leaf = KvTrie::kRoot;  // holds a handle while the cache is in the store
    std::vector<TokenId> tokens;
    PromptTemplate prompt;
  };
  const Entry& entry(const std::string& name) const;

  Model& model_;
  const Tokenizer& tokenizer_;
  KvTrie trie_;
  std::map<std::string, Entry> entries_;
};

}  // namespace frugal
