#include "frugal/bm25_index.h"

#include <sqlite3.h>

#include <cctype>
#include <filesystem>
#include <utility>

#include <fmt/format.h>

#include "frugal/error.h"

namespace frugal {

namespace {

// A prepared statement that finalizes itself.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      throw Error(fmt::format("BM25 index: {} ({})", sqlite3_errmsg(db), sql));
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  sqlite3_stmt* get() const { return stmt_; }
  void bind(int i, std::string_view text) { sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT); }
  void bind(int i, int64_t value) { sqlite3_bind_int64(stmt_, i, value); }
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw Error(fmt::format("BM25 index: {}", sqlite3_errmsg(db_)));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

void exec(sqlite3* db, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    const std::string text = message ? message : "unknown error";
    sqlite3_free(message);
    throw Error(fmt::format("BM25 index: {} ({})", text, sql));
  }
}

sqlite3* open_database(const std::filesystem::path& path, int flags) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    const std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw Error(fmt::format("{}: cannot open the BM25 index: {}", path.string(), message));
  }
  return db;
}

}  // namespace

std::string fts5_any_word_query(std::string_view query) {
  // Words are runs of letters, digits and any non-ASCII byte (UTF-8 letters);
  // quoting each one keeps FTS5 operators and punctuation out of the query.
  std::string out, word;
  auto flush = [&] {
    if (word.empty()) return;
    out += fmt::format("{}\"{}\"", out.empty() ? "" : " OR ", word);
    word.clear();
  };
  for (char c : query) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || u >= 0x80) {
      word += c;
    } else {
      flush();
    }
  }
  flush();
  return out;
}

Bm25Index::Bm25Index(sqlite3* db) : db_(db) {}
Bm25Index::Bm25Index(Bm25Index&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
Bm25Index& Bm25Index::operator=(Bm25Index&& other) noexcept {
  if (this != &other) {
    sqlite3_close(db_);
    db_ = std::exchange(other.db_, nullptr);
  }
  return *this;
}
Bm25Index::~Bm25Index() { sqlite3_close(db_); }

Bm25Index Bm25Index::build(const std::filesystem::path& path, std::span<const Document> passages) {
  std::error_code ignored;
  std::filesystem::remove(path, ignored);
  Bm25Index index(open_database(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  exec(index.db_, "CREATE VIRTUAL TABLE passages USING fts5(id UNINDEXED, title, text, "
                  "tokenize = 'porter unicode61 remove_diacritics 2')");
  exec(index.db_, "BEGIN");
  {
    Statement insert(index.db_, "INSERT INTO passages(rowid, id, title, text) VALUES (?, ?, ?, ?)");
    for (size_t i = 0; i < passages.size(); ++i) {
      sqlite3_reset(insert.get());
      insert.bind(1, static_cast<int64_t>(i));
      insert.bind(2, passages[i].id);
      insert.bind(3, passages[i].title);
      insert.bind(4, passages[i].text);
      insert.step();
    }
  }
  exec(index.db_, "COMMIT");
  exec(index.db_, "INSERT INTO passages(passages) VALUES ('optimize')");
  return index;
}

Bm25Index Bm25Index::open(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) throw Error(fmt::format("{}: no such BM25 index", path.string()));
  Bm25Index index(open_database(path, SQLITE_OPEN_READONLY));
  try {
    Statement check(index.db_, "SELECT count(*) FROM passages");
    check.step();
  } catch (const Error&) {
    throw Error(fmt::format("{}: not a frugal BM25 index (no passages table)", path.string()));
  }
  return index;
}

std::vector<RetrievedPassage> Bm25Index::search(std::string_view query, size_t k) const {
  std::vector<RetrievedPassage> out;
  const std::string expression = fts5_any_word_query(query);
  if (expression.empty() || k == 0) return out;
  // bm25() is lower for better matches; the title counts as much as the text.
  Statement search(db_, "SELECT rowid, id, bm25(passages, 0.0, 1.0, 1.0) AS score FROM passages "
                        "WHERE passages MATCH ? ORDER BY score LIMIT ?");
  search.bind(1, expression);
  search.bind(2, static_cast<int64_t>(k));
  while (search.step()) {
    RetrievedPassage p;
    p.index = static_cast<size_t>(sqlite3_column_int64(search.get(), 0));
    p.id = reinterpret_cast<const char*>(sqlite3_column_text(search.get(), 1));
    p.score = -sqlite3_column_double(search.get(), 2);
    out.push_back(std::move(p));
  }
  return out;
}

size_t Bm25Index::size() const {
  Statement count(db_, "SELECT count(*) FROM passages");
  count.step();
  return static_cast<size_t>(sqlite3_column_int64(count.get(), 0));
}

}  // namespace frugal
