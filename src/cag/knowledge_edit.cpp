// Dynamic knowledge: adding, updating and removing documents while reusing
// the cached prefix before the first change. Because every document is
// tokenized on its own and keys/values at a position depend only on the
// tokens before it, the result equals a build from scratch.
#include <algorithm>
#include <map>
#include <set>

#include <fmt/format.h>

#include "cag/knowledge_state.h"
#include "frugal/error.h"

namespace frugal {

KnowledgeEditReport KnowledgeCache::set_documents(std::vector<Document> documents, const PrefillProgress& progress) {
  State& s = *state_;
  std::set<std::string> ids;
  for (const Document& doc : documents) {
    if (!ids.insert(doc.id).second) throw Error(fmt::format("two documents have the id '{}'", doc.id));
  }
  size_t first = 0;
  while (first < documents.size() && first < s.documents.size() &&
         document_hash(documents[first]) == s.documents[first].hash) {
    ++first;
  }
  KnowledgeEditReport report;
  report.first_changed_document = first;
  const size_t kept = first < s.documents.size() ? static_cast<size_t>(s.documents[first].first_token)
                                                 : s.tokens.size();
  std::vector<TokenId> tokens(s.tokens.begin(), s.tokens.begin() + static_cast<std::ptrdiff_t>(kept));
  std::vector<KnowledgeDocument> laid_out(s.documents.begin(), s.documents.begin() + static_cast<std::ptrdiff_t>(first));
  auto added = s.lay_out(std::move(documents), first, tokens);
  std::move(added.begin(), added.end(), std::back_inserter(laid_out));
  s.check_fits(tokens.size(), laid_out);

  report.kept_tokens = kept;
  report.recomputed_tokens = tokens.size() - kept;
  report.full_rebuild_tokens = tokens.size();
  if (first == laid_out.size() && laid_out.size() == s.documents.size() && tokens.size() == s.tokens.size()) {
    return report;  // nothing changed
  }

  s.cache.truncate(static_cast<int64_t>(kept));
  std::vector<KnowledgeDocument> unchanged(s.documents.begin(), s.documents.begin() + static_cast<std::ptrdiff_t>(first));
  s.tokens = std::move(tokens);
  s.documents = std::move(laid_out);
  try {
    if (s.tokens.size() > kept) s.prefill_from(kept, progress);
  } catch (...) {
    // Keys and values past `kept` are gone: fall back to the consistent
    // state of the documents before the first change.
    s.tokens.resize(kept);
    s.documents = std::move(unchanged);
    s.cache.truncate(static_cast<int64_t>(kept));
    throw;
  }
  return report;
}

KnowledgeEditReport KnowledgeCache::add(std::vector<Document> documents, bool append_only,
                                        const PrefillProgress& progress) {
  std::vector<Document> all;
  for (const auto& entry : state_->documents) all.push_back(entry.document);
  for (Document& doc : documents) {
    for (const Document& existing : all) {
      if (existing.id == doc.id) {
        throw Error(fmt::format("a document with the id '{}' is already in the cache; use `frugal kb update` to "
                                "change it", doc.id));
      }
    }
    auto where = all.end();
    if (!append_only) {
      where = std::find_if(all.begin(), all.end(), [&](const Document& d) { return d.id > doc.id; });
    }
    all.insert(where, std::move(doc));
  }
  return set_documents(std::move(all), progress);
}

KnowledgeEditReport KnowledgeCache::update(std::vector<Document> documents, const PrefillProgress& progress) {
  std::vector<Document> all;
  for (const auto& entry : state_->documents) all.push_back(entry.document);
  for (Document& doc : documents) {
    auto it = std::find_if(all.begin(), all.end(), [&](const Document& d) { return d.id == doc.id; });
    if (it == all.end()) {
      throw Error(fmt::format("no document with the id '{}' in the cache; use `frugal kb add` for new documents",
                              doc.id));
    }
    *it = std::move(doc);
  }
  return set_documents(std::move(all), progress);
}

KnowledgeEditReport KnowledgeCache::remove(std::span<const std::string> ids, const PrefillProgress& progress) {
  std::vector<Document> all;
  std::set<std::string> found;
  for (const auto& entry : state_->documents) {
    if (std::find(ids.begin(), ids.end(), entry.document.id) != ids.end()) {
      found.insert(entry.document.id);
    } else {
      all.push_back(entry.document);
    }
  }
  for (const std::string& id : ids) {
    if (!found.count(id)) throw Error(fmt::format("no document with the id '{}' in the cache", id));
  }
  return set_documents(std::move(all), progress);
}

}  // namespace frugal
