// SentencePiece-style tokenizer (`tokenizer.ggml.model` = llama): spaces are
// escaped to U+2581, then adjacent symbols are merged greedily by the score
// of the merged token (llama.cpp's llm_tokenizer_spm); symbols that are not
// tokens fall back to <0xXX> byte tokens.
#include <array>
#include <queue>
#include <string>
#include <vector>

#include "frugal/error.h"
#include "frugal/gguf.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab_tokenizer.h"

namespace frugal::detail {

namespace {

constexpr std::string_view kEscapedSpace = "\xE2\x96\x81";  // U+2581

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

    struct Symbol {
      int prev, next;
      size_t start, n;
    };
    struct Bigram {
      int left, right;
      float score;
      size_t size;
    };
    struct Lower {  // priority: highest score, then leftmost
      bool operator()(const Bigram& l, const Bigram& r) const {
        return l.score < r.score || (l.score == r.score && l.left > r.left);
      }
    };

    std::vector<Symbol> symbols;
    symbols.reserve(s.size());
    for (size_t offset = 0; offset < s.size();) {
      const size_t len = std::min(unicode::utf8_len(s[offset]), s.size() - offset);
      const int index = static_cast<int>(symbols.size());
      symbols.push_back({index - 1, offset + len == s.size() ? -1 : index + 1, offset, len});
      offset += len;
    }

    std::vector<Bigram> storage;
    storage.reserve(symbols.size());
    std::priority_queue<Bigram, std::vector<Bigram>, Lower> queue(Lower{}, std::move(storage));
    const auto try_add = [&](int left, int right) {
      if (left < 0 || right < 0) return;
      const std::string_view merged(s.data() + symbols[left].start, symbols[left].n + symbols[right].n);
      const TokenId id = text_to_token(merged);
      if (id < 0) return;
      queue.push({left, right, score(id), merged.size()});
    };
    for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

    while (!queue.empty()) {
      const Bigram bigram = queue.top();
      queue.pop();
      Symbol& left = symbols[bigram.left];
      Symbol& right = symbols[bigram.right];
      if (left.n == 0 || right.n == 0 || left.n + right.n != bigram.size) continue;  // stale
      left.n += right.n;
      right.n = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = bigram.left;
      try_add(left.prev, bigram.left);
      try_add(bigram.left, left.next);
    }

    for (int i = 0; i != -1; i = symbols[i].next) {
      const Symbol& sym = symbols[i];
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

  std::string normal_piece(TokenId id) const override {
    const std::string& text = tokens_[static_cast<size_t>(id)];
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      if (text.compare(i, kEscapedSpace.size(), kEscapedSpace) == 0) {
        out.push_back(' ');
        i += kEscapedSpace.size();
      } else {
        out.push_back(text[i++]);
      }
    }
    return out;
  }

 private:
  std::array<TokenId, 256> byte_tokens_{};
};

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(const GgufFile& file, const std::string& pre) {
  return std::make_unique<SpmTokenizer>(file, pre);
}

}  // namespace frugal::detail
