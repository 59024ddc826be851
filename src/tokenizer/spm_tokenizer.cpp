// SentencePiece-style tokenizer (`tokenizer.ggml.model` = llama): spaces are
// escaped to U+2581, then adjacent symbols are merged greedily by the score
// of the merged token (llama.cpp's llm_tokenizer_spm); symbols that are not
// tokens fall back to <0xXX> byte tokens.
#include <array>
#include <string>
#include <vector>

#include "frugal/error.h"
#include "frugal/gguf.h"
#include "tokenizer/symbol_merge.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab_tokenizer.h"

namespace frugal::detail {

namespace {


class SpmTokenizer final : public VocabTokenizer {
 public:
  SpmTokenizer(const GgufFile& file, const std::string& pre) {
    Defaults d;
    d.bos = 1;
    d.eos = 2;
    d.unk = 0;
    d.add_bos = true;
    d.add_space_prefix = true;
    load_vocab(file, "llama", pre, d);
    static const char* kHex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      const char name[7] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>', 0};
      TokenId id = text_to_token(name);
      if (id < 0) id = text_to_token(std::string(1, static_cast<char>(b)));
      byte_tokens_[static_cast<size_t>(b)] = id >= 0 ? id : unk_;
    }
  }

 protected:
  void tokenize_text(std::string_view text, bool after_special, std::vector<TokenId>& out) const override {
    std::string s;
    s.reserve(text.size() + text.size() / 2 + 4);
    if (add_space_prefix_ && after_special) s += kEscapedSpace;
    for (char c : text) {
      if (c == ' ') {
        s += kEscapedSpace;
      } else {
        s.push_back(c);
      }
    }
    if (s.empty()) return;

    std::vector<MergeSymbol> symbols;
    symbols.reserve(s.size());
    // A pair merges when the merged text is a token; higher scores first.
    merge_best_pairs<float>(s, symbols, [&](std::string_view left, std::string_view right) -> std::optional<float> {
      const TokenId id = text_to_token(std::string_view(left.data(), left.size() + right.size()));
      if (id < 0) return std::nullopt;
      return score(id);
    });

    for (int i = 0; i != -1; i = symbols[i].next) {
      const MergeSymbol& sym = symbols[i];
      const std::string_view piece(s.data() + sym.start, sym.n);
      const TokenId id = text_to_token(piece);
      if (id >= 0) {
        out.push_back(id);
        continue;
      }
      for (char c : piece) {  // byte fallback
        const TokenId byte_id = byte_tokens_[static_cast<uint8_t>(c)];
        if (byte_id >= 0) out.push_back(byte_id);
      }
    }
  }

  std::string normal_piece(TokenId id) const override { return unescape_spaces(tokens_[static_cast<size_t>(id)]); }

 private:
  std::array<TokenId, 256> byte_tokens_{};
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(const GgufFile& file, const std::string& pre) {
  return std::make_unique<SpmTokenizer>(file, pre);
}

}  // namespace frugal::detail
