// Helpers shared by the tokenizer tests: cached tokenizers for the shared
// vocab files and the ggml vocab test-vector format.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "frugal/gguf.h"
#include "frugal/tokenizer.h"
#include "support/test_paths.h"

namespace frugal::test {

// Loads (once per process) the tokenizer of a shared file, e.g.
// "vocab/ggml-vocab-gpt-2.gguf".
inline const Tokenizer& shared_tokenizer(const std::string& relative) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[relative];
  if (!slot) {
    GgufFile file = GgufFile::open(shared_path(relative));
    slot = Tokenizer::from_gguf(file);
  }
  return *slot;
}

inline std::string read_file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct VocabCase {
  std::string input;
  std::vector<TokenId> expected;
};

// X.gguf.inp split on "\n__ggml_vocab_test__\n" (the file ends with one);
// line i of X.gguf.out holds the ids of piece i.
inline std::vector<VocabCase> load_vocab_cases(const std::string& vocab_file) {
  const std::string inp = read_file_bytes(shared_path("vocab/" + vocab_file + ".inp"));
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> pieces;
  size_t start = 0;
  while (true) {
    const size_t pos = inp.find(sep, start);
    if (pos == std::string::npos) break;
    pieces.push_back(inp.substr(start, pos - start));
    start = pos + sep.size();
  }
  std::ifstream out(shared_path("vocab/" + vocab_file + ".out"));
  std::vector<VocabCase> cases;
  std::string line;
  size_t i = 0;
  while (std::getline(out, line) && i < pieces.size()) {
    VocabCase c;
    c.input = pieces[i++];
    std::istringstream ids(line);
    long long id = 0;
    while (ids >> id) c.expected.push_back(static_cast<TokenId>(id));
    cases.push_back(std::move(c));
  }
  return cases;
}

inline std::string ids_to_string(const std::vector<TokenId>& ids) {
  std::string s;
  for (TokenId id : ids) {
    if (!s.empty()) s += ' ';
    s += std::to_string(id);
  }
  return s;
}

// Escapes control and non-ASCII bytes so a failing input is readable.
inline std::string printable(const std::string& text) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (unsigned char c : text) {
    if (c == '\n') {
      s += "\\n";
    } else if (c == '\t') {
      s += "\\t";
    } else if (c == '\r') {
      s += "\\r";
    } else if (c < 0x20 || c == 0x7F) {
      s += "\\x";
      s += kHex[c >> 4];
      s += kHex[c & 15];
    } else {
      s += static_cast<char>(c);
    }
  }
  return s;
}

}  // namespace frugal::test
