// Named knowledge caches served by one GenerationScheduler. Each cache's
// keys and values are copied once into the scheduler's shared-prefix store
// and pinned there (caches whose prompts begin alike, with the same layout
// and system text, share that beginning); a question is one more sequence of
// the batch, starting after its cache's prefix and let go when its answer
// is done. The server answers its MODEL@NAME models this way.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/generate.h"
#include "frugal/knowledge_cache.h"
#include "frugal/model.h"
#include "frugal/scheduler.h"

namespace frugal {

class KnowledgeStore {
 public:
  struct Knowledge {
    std::vector<TokenId> tokens;  // the cached prefix
    PromptTemplate prompt;        // how a question is written after it
  };

  // `scheduler` must run `model` with `tokenizer` and outlive the store.
  KnowledgeStore(Model& model, const Tokenizer& tokenizer, GenerationScheduler& scheduler);
  ~KnowledgeStore();  // unpins every cache
  KnowledgeStore(const KnowledgeStore&) = delete;
  KnowledgeStore& operator=(const KnowledgeStore&) = delete;

  // Loads a `.fkv` file (checked as KnowledgeCache::load checks it) under
  // `name`; the file is closed again. Returns how many of its tokens were
  // already in the store (shared with caches added before). Throws Error
  // for a name already used.
  size_t add(const std::string& name, const std::filesystem::path& path, const KnowledgeLoadOptions& options = {});
  void remove(const std::string& name);
  bool contains(const std::string& name) const { return entries_.count(name) > 0; }
  std::vector<std::string> names() const;
  // Throws Error naming the loaded caches when there is none called `name`.
  const Knowledge& get(const std::string& name) const;

  // Knowledge prefix + question tokens: the prompt a question is answered from.
  std::vector<TokenId> prompt_tokens(const std::string& name, std::string_view question) const;
  // Answers over the named cache through the scheduler (waits for the answer).
  GenerationResult ask(const std::string& name, std::string_view question, const GenerationOptions& options,
                       const TextCallback& on_text = {});

  KvTrieStats stats() const { return scheduler_.stats().store; }
  // Bytes the caches' keys and values would take one by one (no sharing).
  size_t unshared_bytes() const;

 private:
  Model& model_;
  const Tokenizer& tokenizer_;
  GenerationScheduler& scheduler_;
  std::map<std::string, Knowledge> entries_;
};

}  // namespace frugal
