#include "frugal/knowledge_store.h"

#include <fmt/format.h>

#include "frugal/error.h"

namespace frugal {

KnowledgeStore::KnowledgeStore(Model& model, const Tokenizer& tokenizer, GenerationScheduler& scheduler)
    : model_(model), tokenizer_(tokenizer), scheduler_(scheduler) {}

KnowledgeStore::~KnowledgeStore() {
  for (const auto& [_, knowledge] : entries_) {
    try {
      scheduler_.unpin_prefix(knowledge.tokens);
    } catch (const Error&) {  // pinned by add(), so always there; a destructor must not throw anyway
    }
  }
}

size_t KnowledgeStore::add(const std::string& name, const std::filesystem::path& path,
                           const KnowledgeLoadOptions& options) {
  if (entries_.count(name)) throw Error(fmt::format("a knowledge cache named '{}' is already loaded", name));
  KnowledgeCache cache = KnowledgeCache::load(path, model_, tokenizer_, options);
  const auto tokens = cache.tokens();
  // Tokens already there were computed for an earlier cache with the same beginning.
  const size_t shared = scheduler_.pin_prefix(tokens, cache.cache());
  entries_[name] = Knowledge{std::vector<TokenId>(tokens.begin(), tokens.end()), cache.prompt()};
  return shared;
}

void KnowledgeStore::remove(const std::string& name) {
  scheduler_.unpin_prefix(get(name).tokens);
  entries_.erase(name);
}

std::vector<std::string> KnowledgeStore::names() const {
  std::vector<std::string> out;
  for (const auto& [name, _] : entries_) out.push_back(name);
  return out;
}

const KnowledgeStore::Knowledge& KnowledgeStore::get(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    std::string known;
    for (const auto& [n, _] : entries_) known += fmt::format("{}{}", known.empty() ? "" : ", ", n);
    throw Error(fmt::format("no knowledge cache named '{}' (loaded: {})", name, known.empty() ? "none" : known));
  }
  return it->second;
}

std::vector<TokenId> KnowledgeStore::prompt_tokens(const std::string& name, std::string_view question) const {
  const Knowledge& knowledge = get(name);
  std::vector<TokenId> tokens = knowledge.tokens;
  const auto q = encode_question(tokenizer_, knowledge.prompt, question);
  tokens.insert(tokens.end(), q.begin(), q.end());
  return tokens;
}

GenerationResult KnowledgeStore::ask(const std::string& name, std::string_view question,
                                     const GenerationOptions& options, const TextCallback& on_text) {
  GenerationJob job{prompt_tokens(name, question), options};
  job.on_text = on_text;
  return scheduler_.submit(std::move(job)).get();
}

size_t KnowledgeStore::unshared_bytes() const {
  size_t tokens = 0;
  for (const auto& [_, knowledge] : entries_) tokens += knowledge.tokens.size();
  return tokens * scheduler_.store_layout().slot_bytes();
}

}  // namespace frugal
