// Byte-level BPE (`tokenizer.ggml.model` = gpt2): the text is split into
// pre-tokens by the regexes named by `tokenizer.ggml.pre`, each pre-token's
// bytes are mapped to GPT-2's printable codepoints, and adjacent symbols are
// merged by the rank of the pair in `tokenizer.ggml.merges` (lowest first),
// as llama.cpp's llm_tokenizer_bpe does.
#include <string>
#include <vector>

#include "frugal/error.h"
#include "frugal/gguf.h"
#include "tokenizer/pre_tokenizers.h"
#include "tokenizer/symbol_merge.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab_tokenizer.h"

namespace frugal::detail {

namespace {

// Replaces invalid UTF-8 sequences by U+FFFD (as llama.cpp does when it
// splits the text into codepoints); returns false when `text` is valid.
bool sanitize_utf8(std::string_view text, std::string& out) {
  size_t offset = 0;
  bool valid = true;
  while (offset < text.size()) {
    const size_t before = offset;
    const uint32_t cpt = unicode::decode_utf8(text, offset);
    if (cpt == 0xFFFD && !(offset - before == 3 && text.substr(before, 3) == "\xEF\xBF\xBD")) {
      valid = false;
      break;
    }
  }
  if (valid) return false;
  out.clear();
  offset = 0;
  while (offset < text.size()) unicode::append_utf8(out, unicode::decode_utf8(text, offset));
  return true;
}

class BpeTokenizer final : public VocabTokenizer {
 public:
  BpeTokenizer(const GgufFile& file, const std::string& pre, PreTokenizerConfig config)
      : config_(std::move(config)), splitter_(config_.regexes) {
    Defaults d;
    d.bos = config_.no_bos ? -1 : 11;  // llama.cpp's defaults for BPE vocabularies
    d.eos = 11;
    d.add_bos = config_.add_bos;
    load_vocab(file, "gpt2", pre, d);

    const GgufValue* merges = file.find("tokenizer.ggml.merges");
    if (merges == nullptr) throw FormatError(file.source_name() + ": tokenizer.ggml.merges is missing");
    const std::vector<std::string> list = file.get_string_array("tokenizer.ggml.merges");
    ranks_.reserve(list.size());
    for (size_t i = 0; i < list.size(); ++i) {
      // llama.cpp splits at the first space after the first character.
      const size_t pos = list[i].find(' ', 1);
      std::string key = pos == std::string::npos ? std::string(" ") : list[i];
      ranks_.emplace(std::move(key), static_cast<int>(i));
    }
  }

 protected:
  void tokenize_text(std::string_view text, bool /*after_special*/, std::vector<TokenId>& out) const override {
    std::string sanitized;
    if (sanitize_utf8(text, sanitized)) text = sanitized;

    std::string word;
    std::string key;
    std::vector<MergeSymbol> symbols;
    for (std::string_view piece : splitter_.split(text)) {
      word.clear();
      for (char c : piece) word += unicode::byte_to_unicode(static_cast<uint8_t>(c));

      if (config_.ignore_merges) {
        const TokenId id = text_to_token(word);
        if (id >= 0) {
          out.push_back(id);
          continue;
        }
      }

      // Lower merge ranks apply first.
      merge_best_pairs<int>(word, symbols, [&](std::string_view left, std::string_view right) -> std::optional<int> {
        key.assign(left);
        key.push_back(' ');
        key.append(right);
        const auto it = ranks_.find(key);
        if (it == ranks_.end()) return std::nullopt;
        return -it->second;
      });

      for (int i = 0; i != -1 && !symbols.empty(); i = symbols[i].next) {
        const std::string_view sym(word.data() + symbols[i].start, symbols[i].n);
        const TokenId id = text_to_token(sym);
        if (id >= 0) {
          out.push_back(id);
          continue;
        }
        for (char c : sym) {  // llama.cpp: fall back to single-byte tokens where they exist
          const TokenId byte_id = text_to_token(std::string_view(&c, 1));
          if (byte_id >= 0) out.push_back(byte_id);
        }
      }
    }
  }

  std::string normal_piece(TokenId id) const override {
    const std::string& text = tokens_[static_cast<size_t>(id)];
    std::string out;
    out.reserve(text.size());
    size_t offset = 0;
    while (offset < text.size()) {
      const size_t before = offset;
      const uint32_t cpt = unicode::decode_utf8(text, offset);
      const int byte = unicode::unicode_to_byte(cpt);
      if (byte >= 0) {
        out.push_back(static_cast<char>(byte));
      } else {
        out.append(text, before, offset - before);  // not byte-encoded: keep as is
      }
    }
    return out;
  }

  bool strip_leading_space() const override { return false; }

 private:
  PreTokenizerConfig config_;
  RegexSplitter splitter_;
  StringMap<int> ranks_;  // "left right" -> merge rank
};

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(const GgufFile& file, const std::string& pre) {
  PreTokenizerConfig config;
  try {
    config = pre_tokenizer_config(pre);
  } catch (const UnsupportedError& e) {
    throw UnsupportedError(file.source_name() + ": " + e.what());
  }
  return std::make_unique<BpeTokenizer>(file, pre, std::move(config));
}

}  // namespace frugal::detail
