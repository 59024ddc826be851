// Reading a corpus: folders and files of text or Markdown, or JSON Lines.
#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <xxhash.h>

#include "frugal/error.h"
#include "frugal/knowledge.h"

namespace frugal {

namespace {

namespace fs = std::filesystem;

bool is_text_file(const fs::path& path) {
  const std::string extension = path.extension().string();
  return extension == ".txt" || extension == ".md" || extension == ".markdown";
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot read the document", path.string()));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(first, last - first + 1));
}

// A Markdown file's first line "# Title" becomes the title.
Document text_document(const std::string& id, std::string_view text) {
  Document document;
  document.id = id;
  const std::string start = trim(text);
  if (start.rfind("# ", 0) == 0) {
    const size_t end = start.find('\n');
    document.title = trim(start.substr(2, end == std::string::npos ? std::string::npos : end - 2));
    document.text = end == std::string::npos ? std::string() : trim(start.substr(end + 1));
  } else {
    document.title = document.id;
    document.text = start;
  }
  return document;
}

void read_jsonl(std::istream& in, const fs::path& path, std::vector<Document>& out) {
  std::string line;
  size_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (trim(line).empty()) continue;
    const auto where = [&] { return fmt::format("{}:{}", path.string(), line_number); };
    nlohmann::json object;
    try {
      object = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: not valid JSON ({})", where(), e.what()));
    }
    if (!object.is_object() || !object.contains("text") || !object["text"].is_string()) {
      throw Error(fmt::format("{}: expected an object {{\"id\", \"title\", \"text\"}} with a string \"text\"", where()));
    }
    Document document;
    document.text = trim(object["text"].get<std::string>());
    for (const char* key : {"id", "title"}) {
      if (!object.contains(key)) continue;
      const auto& value = object[key];
      if (!value.is_string() && !value.is_number_integer()) {
        throw Error(fmt::format("{}: \"{}\" must be a string or an integer", where(), key));
      }
      (std::string_view(key) == "id" ? document.id : document.title) =
          value.is_string() ? value.get<std::string>() : std::to_string(value.get<int64_t>());
    }
    if (document.id.empty()) document.id = fmt::format("{}-{}", path.stem().string(), line_number);
    if (document.title.empty()) document.title = document.id;
    out.push_back(std::move(document));
  }
}

// The byte offset of the first invalid UTF-8 sequence, or npos.
size_t invalid_utf8_at(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (length == 0 || i + length > s.size()) return i;
    uint32_t code = length == 1 ? c : c & (0x7F >> length);
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(s[i + k]);
      if ((next & 0xC0) != 0x80) return i;
      code = (code << 6) | (next & 0x3F);
    }
    const bool overlong = (length == 2 && code < 0x80) || (length == 3 && code < 0x800) || (length == 4 && code < 0x10000);
    if (overlong || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return i;
    i += length;
  }
  return std::string_view::npos;
}

void check_utf8(const Document& document, const std::string& source) {
  for (const std::string* field : {&document.id, &document.title, &document.text}) {
    if (const size_t at = invalid_utf8_at(*field); at != std::string_view::npos) {
      throw Error(fmt::format("{}: document '{}' is not valid UTF-8 (byte {} of its {}); convert the file to UTF-8, "
                              "e.g. with iconv -f latin1 -t utf-8", source, document.id, at,
                              field == &document.text ? "text" : field == &document.title ? "title" : "id"));
    }
  }
}

}  // namespace

std::vector<Document> read_documents(std::span<const fs::path> paths) {
  std::vector<Document> documents;
  for (const fs::path& path : paths) {
    std::error_code error;
    if (fs::is_directory(path, error)) {
      std::vector<fs::path> files;
      for (const auto& entry : fs::directory_iterator(path)) {
        if (entry.is_regular_file() && is_text_file(entry.path())) files.push_back(entry.path());
      }
      // By id (the name without extension), the order `kb add` keeps.
      std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
        return std::pair(a.stem().string(), a.string()) < std::pair(b.stem().string(), b.string());
      });
      if (files.empty()) throw Error(fmt::format("{}: the folder has no .txt or .md files", path.string()));
      for (const auto& file : files) {
        documents.push_back(text_document(file.stem().string(), read_file(file)));
        check_utf8(documents.back(), file.string());
      }
    } else if (!fs::exists(path, error)) {
      throw Error(fmt::format("{}: no such file or folder", path.string()));
    } else if (path.extension() == ".jsonl") {
      std::ifstream in(path, std::ios::binary);
      if (!in) throw Error(fmt::format("{}: cannot read the document file", path.string()));
      read_jsonl(in, path, documents);  // the JSON parser rejects invalid UTF-8 itself
    } else {
      documents.push_back(text_document(path.stem().string(), read_file(path)));
      check_utf8(documents.back(), path.string());
    }
  }
  check_unique_ids(documents);
  return documents;
}

std::vector<Document> documents_from_file(const std::string& file_name, std::string_view content) {
  const fs::path path(file_name);
  if (file_name.empty() || path.has_parent_path() || path.stem().string().empty()) {
    throw Error(fmt::format("'{}' is not a plain file name (name.txt, name.md or name.jsonl)", file_name));
  }
  std::vector<Document> documents;
  if (path.extension() == ".jsonl") {
    std::istringstream in{std::string(content)};
    read_jsonl(in, path, documents);
  } else if (is_text_file(path)) {
    documents.push_back(text_document(path.stem().string(), content));
    check_utf8(documents.back(), file_name);
  } else {
    throw Error(fmt::format("{}: only .txt, .md and .jsonl files can be documents", file_name));
  }
  check_unique_ids(documents);
  return documents;
}

void check_unique_ids(std::span<const Document> documents) {
  std::set<std::string> ids;
  for (const Document& document : documents) {
    if (document.id.empty()) throw Error("a document has an empty id");
    if (!ids.insert(document.id).second) {
      throw Error(fmt::format("two documents have the id '{}'; ids must be unique (rename one file or fix the "
                              "\"id\" in the JSONL)", document.id));
    }
  }
}

uint64_t document_hash(const Document& document) {
  XXH3_state_t* state = XXH3_createState();
  if (state == nullptr) throw std::bad_alloc();
  XXH3_64bits_reset(state);
  for (const std::string* part : {&document.id, &document.title, &document.text}) {
    const uint64_t size = part->size();
    XXH3_64bits_update(state, &size, sizeof size);  // lengths keep ("ab","c") apart from ("a","bc")
    XXH3_64bits_update(state, part->data(), part->size());
  }
  const uint64_t hash = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return hash;
}

}  // namespace frugal
