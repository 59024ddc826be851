// BM25 retrieval over passages, for the RAG baselines of the OAE benchmark:
// a real SQLite FTS5 index file on disk, built once, queried per question.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/knowledge.h"

struct sqlite3;

namespace frugal {

struct RetrievedPassage {
  size_t index = 0;  // position in the list the index was built from
  std::string id;
  double score = 0;  // BM25, higher is better
};

class Bm25Index {
 public:
  // Writes a new index file (replacing one that exists) with every passage
  // (title and text indexed, Porter stemming, Unicode case folding).
  static Bm25Index build(const std::filesystem::path& path, std::span<const Document> passages);
  // Opens an index file read-only. Throws Error when it is not one.
  static Bm25Index open(const std::filesystem::path& path);

  Bm25Index(Bm25Index&&) noexcept;
  Bm25Index& operator=(Bm25Index&&) noexcept;
  ~Bm25Index();

  // The `k` best passages for a free-text query (its words are matched with
  // OR, so any shared word counts; FTS5 syntax in the query is neutralised).
  std::vector<RetrievedPassage> search(std::string_view query, size_t k) const;
  size_t size() const;

 private:
  explicit Bm25Index(sqlite3* db);
  sqlite3* db_ = nullptr;
};

// The words of `query` as an FTS5 expression: each word quoted, joined with
// OR; empty when the query has no word characters.
std::string fts5_any_word_query(std::string_view query);

}  // namespace frugal
