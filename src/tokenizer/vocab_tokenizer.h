// Shared machinery of the concrete tokenizers: vocabulary loading from GGUF
// metadata, special-token partitioning, BOS/EOS/SEP handling, pieces and
// decoding. Subclasses provide the model-specific text tokenization.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "frugal/tokenizer.h"

namespace frugal::detail {

// SentencePiece writes spaces as U+2581 LOWER ONE EIGHTH BLOCK.
inline constexpr std::string_view kEscapedSpace = "\xE2\x96\x81";

inline std::string unescape_spaces(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text.substr(i, kEscapedSpace.size()) == kEscapedSpace) {
      out.push_back(' ');
      i += kEscapedSpace.size();
    } else {
      out.push_back(text[i++]);
    }
  }
  return out;
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// A run of input text still to tokenize, or a special token found in it.
struct Fragment {
  TokenId token = -1;  // >= 0: a special token matched in the text
  std::string_view text;
};

class VocabTokenizer : public Tokenizer {
 public:
  std::vector<TokenId> encode(std::string_view text, bool add_special,
                              bool parse_special) const override;
  std::vector<TokenId> encode_parts(std::span<const TextPart> parts, bool add_special) const override;
  std::string token_to_piece(TokenId id, bool render_special = false) const override;
  std::string decode(std::span<const TokenId> tokens, bool render_special = false) const override;

  // Splits `text` on the texts of special tokens (user-defined tokens always,
  // control and unknown ones only when `parse_special`), longest first.
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;

  TokenId text_to_token(std::string_view text) const;
  float score(TokenId id) const { return scores_.empty() ? 0.0f : scores_[static_cast<size_t>(id)]; }
  TokenId sep() const { return sep_; }
  TokenId unk() const { return unk_; }
  bool add_sep() const { return add_sep_; }
  bool add_space_prefix() const { return add_space_prefix_; }

 protected:
  // Per-model defaults, applied before the metadata keys are read.
  struct Defaults {
    TokenId bos = -1, eos = -1, unk = -1, sep = -1, pad = -1, mask = -1;
    bool add_bos = false, add_eos = false, add_sep = false, add_space_prefix = false;
  };
  // Reads the token list, scores, types and special ids; then applies the
  // llama.cpp conventions (end-of-generation set, control-looking tokens,
  // special-token cache).
  void load_vocab(const GgufFile& file, const std::string& model, const std::string& pre,
                  const Defaults& defaults);

  // Tokenizes plain text (no special tokens in it). `after_special`: the text
  // starts the input or follows a special token (SentencePiece adds its space
  // prefix there).
  virtual void tokenize_text(std::string_view text, bool after_special,
                             std::vector<TokenId>& out) const = 0;
  // Text of a normal token as it appears in the input.
  virtual std::string normal_piece(TokenId id) const = 0;
  // Whether decode() drops one leading space of the first piece.
  virtual bool strip_leading_space() const { return add_space_prefix_; }

  StringMap<TokenId> token_to_id_;
  std::vector<float> scores_;
  std::vector<uint8_t> strip_flags_;      // kLstrip / kRstrip per token
  std::vector<TokenId> special_cache_;    // control/user-defined/unknown, longest text first
  TokenId sep_ = -1, mask_ = -1;
  bool add_sep_ = false;
  bool add_space_prefix_ = false;
  size_t max_token_len_ = 0;

  static constexpr uint8_t kLstrip = 1, kRstrip = 2;
};

// Parses "<0xXX>"; returns -1 when `text` is not a byte token text.
int parse_byte_token(std::string_view text);

std::unique_ptr<Tokenizer> make_spm_tokenizer(const GgufFile& file, const std::string& pre);
std::unique_ptr<Tokenizer> make_bpe_tokenizer(const GgufFile& file, const std::string& pre);
std::unique_ptr<Tokenizer> make_wordpiece_tokenizer(const GgufFile& file, const std::string& pre);

}  // namespace frugal::detail
