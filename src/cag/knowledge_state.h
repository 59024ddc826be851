// What a KnowledgeCache holds, shared by its build/load/ask and edit code.
#pragma once

#include <nlohmann/json.hpp>

#include "cag/model_identity.h"
#include "frugal/knowledge_cache.h"

namespace frugal {

struct KnowledgeCache::State {
  Model* model = nullptr;
  const Tokenizer* tokenizer = nullptr;
  PromptTemplate prompt;
  std::string system;
  std::vector<KnowledgeDocument> documents;
  std::vector<TokenId> tokens;  // the knowledge prefix: header then documents
  int64_t header_tokens = 0;
  KvCache cache;                // holds exactly `tokens` between questions
  bool mapped = false;
  int64_t reserve = 256;
  size_t batch = 512;
  PrefillPassRunner run_pass;  // empty: forward passes on the calling thread

  // Throws Error, listing documents by size, when `total_tokens` leave less
  // than `reserve` of the context free.
  void check_fits(size_t total_tokens, std::span<const KnowledgeDocument> docs) const;
  // Tokenizes docs[first..] and appends their tokens to `out`; entries get
  // token positions in `out`.
  std::vector<KnowledgeDocument> lay_out(std::vector<Document> docs, size_t first, std::vector<TokenId>& out) const;
  // Runs tokens[position..] through the model after the cache's first
  // `position` tokens.
  void prefill_from(size_t position, const PrefillProgress& progress);
  nlohmann::json manifest(const cag::ModelIdentity& identity) const;
};

}  // namespace frugal
