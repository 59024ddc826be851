#include "frugal/knowledge_store.h"

#include <cstring>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/quant.h"

namespace frugal {

KnowledgeStore::KnowledgeStore(Model& model, const Tokenizer& tokenizer, size_t budget_bytes)
    : model_(model), tokenizer_(tokenizer), trie_(model.kv_layout(), {.budget_bytes = budget_bytes}) {}

size_t KnowledgeStore::add(const std::string& name, const std::filesystem::path& path,
                           const KnowledgeLoadOptions& options) {
  if (entries_.count(name)) throw Error(fmt::format("a knowledge cache named '{}' is already loaded", name));
  KnowledgeCache cache = KnowledgeCache::load(path, model_, tokenizer_, options);
  const auto tokens = cache.tokens();
  // Tokens already there were computed for an earlier cache with the same beginning.
  const auto [node, shared] = insert_prefix(trie_, tokens, cache.cache());
  trie_.retain(node);
  entries_[name] = Entry{node, std::vector<TokenId>(tokens.begin(), tokens.end()), cache.prompt()};
  return shared;
}

void KnowledgeStore::remove(const std::string& name) {
  const Entry& e = entry(name);
  trie_.release(e.leaf, false);
  entries_.erase(name);
}

bool KnowledgeStore::contains(const std::string& name) const { return entries_.count(name) > 0; }

std::vector<std::string> KnowledgeStore::names() const {
  std::vector<std::string> out;
  for (const auto& [name, _] : entries_) out.push_back(name);
  return out;
}

const KnowledgeStore::Entry& KnowledgeStore::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    std::string known;
    for (const auto& [n, _] : entries_) known += fmt::format("{}{}", known.empty() ? "" : ", ", n);
    throw Error(fmt::format("no knowledge cache named '{}' (loaded: {})", name, known.empty() ? "none" : known));
  }
  return it->second;
}

std::vector<TokenId> KnowledgeStore::prompt_tokens(const std::string& name, std::string_view question) const {
  const Entry& e = entry(name);
  std::vector<TokenId> tokens = e.tokens;
  const auto q = encode_question(tokenizer_, e.prompt, question);
  tokens.insert(tokens.end(), q.begin(), q.end());
  return tokens;
}

GenerationResult KnowledgeStore::ask(const std::string& name, std::string_view question,
                                     const GenerationOptions& options, const TextCallback& on_text) {
  check_tokenizer_matches(model_, tokenizer_);
  const Entry& e = entry(name);
  const auto q = encode_question(tokenizer_, e.prompt, question);
  // The question and answer grow one branch; a handle on its tip keeps it
  // alive and is moved along as tokens are added.
  KvNode tip = e.leaf;
  trie_.retain(tip);
  const TokenFeed feed = [&](std::span<const TokenId> tokens) {
    std::vector<TrieBatchEntry> entries;
    for (size_t i = 0; i < tokens.size(); ++i) {
      bool created = false;
      const KvNode next = trie_.extend(tip, tokens[i], &created);
      // A node that already exists (the same path is another cache's prefix
      // or a live question) keeps its rows; only the last token is run
      // again, for its logits, without rewriting them.
      const bool last = i + 1 == tokens.size();
      if (created || last) entries.push_back({next, last, created});
      trie_.retain(next);
      trie_.release(tip, false);
      tip = next;
    }
    return model_.forward(entries, trie_);
  };
  const int64_t room = model_.config().training_context - static_cast<int64_t>(e.tokens.size());
  try {
    GenerationOptions with_prefix = options;
    with_prefix.preceding_tokens = e.tokens;
    GenerationResult result = generate(feed, tokenizer_, q, room, with_prefix, on_text);
    trie_.release(tip, false);
    return result;
  } catch (...) {
    trie_.release(tip, false);
    throw;
  }
}

size_t KnowledgeStore::unshared_bytes() const {
  size_t tokens = 0;
  for (const auto& [_, e] : entries_) tokens += e.tokens.size();
  return tokens * trie_.layout().slot_bytes();
}

}  // namespace frugal
