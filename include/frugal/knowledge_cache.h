// Knowledge caches: Cache-Augmented Generation as a persistent object. The
// keys and values of a knowledge prefix (system text and documents, see
// knowledge.h) are computed once, saved to a `.fkv` file
// (docs/knowledge-cache.md), mapped back in without copying, and every
// question is answered by appending it after the prefix and truncating back.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "frugal/generate.h"
#include "frugal/knowledge.h"
#include "frugal/model.h"
#include "frugal/tokenizer.h"

namespace frugal {

// Called during prefill with tokens done and tokens to do.
using PrefillProgress = std::function<void(size_t done, size_t total)>;
// Runs one forward pass of a prefill (a batch of tokens) and returns when it
// has run; empty: on the calling thread. A server hands each pass to its
// batch scheduler, so answers go on between the passes of a long prefill.
using PrefillPassRunner = std::function<void(const std::function<void()>&)>;

struct KnowledgeBuildOptions {
  PromptTemplate prompt = plain_prompt_template();
  std::string system;            // empty: the template's default system text
  KvTypes precision = KvPrecision::F32;
  int64_t context = 0;           // 0: the model's training context
  int64_t reserve = 256;         // tokens left free for a question and its answer
  size_t batch = 512;            // tokens per forward pass
  PrefillProgress progress;
  PrefillPassRunner run_pass;
};

struct KnowledgeLoadOptions {
  bool verify_checksum = true;   // false: skip hashing the whole file (faster load)
  int64_t context = 0;           // 0: the model's training context
};

// A document of a knowledge cache and where its tokens are.
struct KnowledgeDocument {
  Document document;
  int64_t first_token = 0;
  int64_t token_count = 0;
  uint64_t hash = 0;  // document_hash()
};

// What an edit cost: the tokens recomputed against those a full rebuild
// would compute.
struct KnowledgeEditReport {
  size_t first_changed_document = 0;  // index in the new order; == count when nothing changed
  size_t kept_tokens = 0;             // prefix reused as it was
  size_t recomputed_tokens = 0;
  size_t full_rebuild_tokens = 0;
};

// What a `.fkv` file holds, read without a model (`frugal kb info`).
struct KnowledgeCacheSummary {
  uint32_t version = 0;
  KvTypes precision = KvPrecision::F32;
  uint32_t layer_count = 0, kv_head_count = 0, head_size = 0;
  uint64_t token_count = 0;
  uint64_t file_bytes = 0;
  std::string model;        // the building model's summary (architecture, name, tensor types...)
  std::string prompt_name;  // plain, chat:<format>, or a template file
  std::string system;
  int64_t header_tokens = 0;
  std::vector<KnowledgeDocument> documents;
};

// Throws like KnowledgeCache::load for structural damage.
KnowledgeCacheSummary inspect_knowledge_cache(const std::filesystem::path& path, bool verify_checksum = true);

// The layout a model gets unless told otherwise: the chat layout of its
// chat template (tokenizer.chat_template) when it has one, else the plain
// layout.
PromptTemplate default_prompt_template(const Model& model, const Tokenizer& tokenizer);

class KnowledgeCache {
 public:
  // Lays out and prefills `documents`. Throws Error when the knowledge does
  // not fit the context minus the reserve, listing the documents' sizes.
  static KnowledgeCache build(Model& model, const Tokenizer& tokenizer, std::vector<Document> documents,
                              const KnowledgeBuildOptions& options);
  // Opens a `.fkv` file: checks its structure, version, model and tokenizer
  // fingerprints, dimensions and (unless skipped) checksum, then maps its
  // keys and values copy-on-write. Throws FormatError naming what differs or
  // what is corrupt.
  static KnowledgeCache load(const std::filesystem::path& path, Model& model, const Tokenizer& tokenizer,
                             const KnowledgeLoadOptions& options = {});

  KnowledgeCache(KnowledgeCache&&) noexcept;
  KnowledgeCache& operator=(KnowledgeCache&&) noexcept;
  ~KnowledgeCache();

  // Writes the cache atomically: a temporary file in the same folder,
  // fsync, then rename, so `path` is always absent, the old file or the
  // complete new one.
  void save(const std::filesystem::path& path) const;

  // Answers `question`: its tokens go after the knowledge prefix, the answer
  // is generated, and the cache is truncated back to the prefix.
  GenerationResult ask(std::string_view question, const GenerationOptions& options,
                       const TextCallback& on_text = {});
  // The whole prompt of a question (prefix + question tokens): what the
  // no-cache baseline prefills from scratch.
  std::vector<TokenId> prompt_tokens(std::string_view question) const;

  // Edits keep the document order and recompute from the first document
  // that differs; the result equals a build from scratch of the new list.
  // add: new documents go before the first document whose id sorts after
  // theirs, or last with `append_only`; an existing id is an error.
  KnowledgeEditReport add(std::vector<Document> documents, bool append_only, const PrefillProgress& progress = {});
  // update: replaces documents with the same ids (unknown ids are an error).
  KnowledgeEditReport update(std::vector<Document> documents, const PrefillProgress& progress = {});
  KnowledgeEditReport remove(std::span<const std::string> ids, const PrefillProgress& progress = {});
  // Replaces the whole list (the three above end here). If the prefill
  // fails (or `progress` throws to cancel), the cache is left holding the
  // documents before the first change, and the exception propagates.
  KnowledgeEditReport set_documents(std::vector<Document> documents, const PrefillProgress& progress = {});

  const std::vector<KnowledgeDocument>& documents() const;
  std::span<const TokenId> tokens() const;  // the knowledge prefix
  const PromptTemplate& prompt() const;
  const std::string& system() const;
  KvTypes types() const;
  // Keeps the keys and values in another precision from now on (save()
  // writes them so): converted row by row, without prefilling again.
  void convert(KvTypes types);
  size_t kv_bytes() const;   // keys and values of the prefix
  bool mapped() const;       // loaded without copying (pages mapped from the file)
  KvCache& cache();
  // How later edits run their forward passes, and how many tokens each
  // takes (as KnowledgeBuildOptions::run_pass and batch).
  void set_prefill_passes(PrefillPassRunner run_pass, size_t batch);

 private:
  struct State;
  explicit KnowledgeCache(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace frugal
