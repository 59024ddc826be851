// WordPiece (`tokenizer.ggml.model` = bert), as llama.cpp's
// llm_tokenizer_wpm: BERT normalisation (lowercase, strip accents, drop
// control characters), split on whitespace and around punctuation and CJK
// characters, then greedy longest-match-first per word. GGUF vocabularies
// store word-initial pieces with a U+2581 prefix and continuation pieces
// ("##x" in BERT) without one.
#include <string>
#include <vector>

#include "frugal/gguf.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab_tokenizer.h"

namespace frugal::detail {

namespace {


bool is_chinese_char(uint32_t cpt) {
  return (cpt >= 0x04E00 && cpt <= 0x09FFF) || (cpt >= 0x03400 && cpt <= 0x04DBF) ||
         (cpt >= 0x20000 && cpt <= 0x2A6DF) || (cpt >= 0x2A700 && cpt <= 0x2B73F) ||
         (cpt >= 0x2B740 && cpt <= 0x2B81F) || (cpt >= 0x2B920 && cpt <= 0x2CEAF) ||  // sic, as HF
         (cpt >= 0x0F900 && cpt <= 0x0FAFF) || (cpt >= 0x2F800 && cpt <= 0x2FA1F);
}

class WordPieceTokenizer final : public VocabTokenizer {
 public:
  WordPieceTokenizer(const GgufFile& file, const std::string& pre) {
    Defaults d;
    d.bos = 101;  // [CLS]
    d.unk = 100;
    d.sep = 102;
    d.pad = 0;
    d.mask = 103;
    d.add_bos = true;
    d.add_sep = true;
    load_vocab(file, "bert", pre, d);
    lowercase_ = file.get_bool_or("tokenizer.ggml.normalizer.lowercase", true);
    strip_accents_ = file.get_bool_or("tokenizer.ggml.normalizer.strip_accents", lowercase_);
  }

 protected:
  void tokenize_text(std::string_view text, bool /*after_special*/, std::vector<TokenId>& out) const override {
    for (const std::string& word : split_words(text)) {
      if (word.empty()) continue;
      const std::string word1 = std::string(kEscapedSpace) + word;  // phantom space
      const size_t n = word1.size();
      const size_t first = out.size();
      for (size_t i = 0; i < n; ++i) {
        bool match = false;
        for (size_t j = std::min(n, i + max_token_len_ + 1); j > i; --j) {
          const TokenId id = text_to_token(std::string_view(word1).substr(i, j - i));
          if (id >= 0) {
            out.push_back(id);
            match = true;
            i = j - 1;
            break;
          }
        }
        if (!match) {  // the whole word becomes unknown
          out.resize(first);
          break;
        }
      }
      if (out.size() == first) out.push_back(unk_);
    }
  }

  std::string normal_piece(TokenId id) const override { return unescape_spaces(tokens_[static_cast<size_t>(id)]); }

  bool strip_leading_space() const override { return true; }

 private:
  std::vector<std::string> split_words(std::string_view text) const {
    std::vector<uint32_t> cpts = unicode::codepoints(text);
    if (strip_accents_) {
      for (uint32_t& c : cpts) c = unicode::nfd_first(c);
    }
    std::vector<std::string> words(1);
    for (const uint32_t cpt : cpts) {
      if (unicode::is_whitespace(cpt)) {
        if (!words.back().empty()) words.emplace_back();
        continue;
      }
      const uint8_t flags = unicode::flags(cpt);
      if (cpt == 0 || cpt == 0xFFFD || (flags & unicode::kControl)) continue;
      if (strip_accents_ && (flags & unicode::kAccentMark)) continue;
      std::string s;
      unicode::append_utf8(s, lowercase_ ? unicode::to_lower(cpt) : cpt);
      if ((flags & unicode::kPunctuation) || (cpt < 0x7F && (flags & unicode::kSymbol)) || is_chinese_char(cpt)) {
        if (!words.back().empty()) words.emplace_back();
        words.back() = s;
        words.emplace_back();
      } else {
        words.back() += s;
      }
    }
    if (words.back().empty()) words.pop_back();
    return words;
  }

  bool lowercase_ = true;
  bool strip_accents_ = true;
};

}  // namespace

std::unique_ptr<Tokenizer> make_wordpiece_tokenizer(const GgufFile& file, const std::string& pre) {
  return std::make_unique<WordPieceTokenizer>(file, pre);
}

}  // namespace frugal::detail
