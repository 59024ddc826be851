// Tokenizers driven by GGUF metadata (`tokenizer.ggml.*`): SentencePiece
// style (`llama`), byte-level BPE (`gpt2`, with the pre-tokenizer named by
// `tokenizer.ggml.pre`) and WordPiece (`bert`).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace frugal {

class GgufFile;

using TokenId = int32_t;

enum class TokenAttribute : int32_t {
  // Values of `tokenizer.ggml.token_type`.
  Undefined = 0,
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
};

class Tokenizer {
 public:
  // Reads the vocabulary from the file's metadata; throws UnsupportedError
  // for an unknown `tokenizer.ggml.model` or `.pre`, FormatError for
  // inconsistent metadata.
  static std::unique_ptr<Tokenizer> from_gguf(const GgufFile& file);
  virtual ~Tokenizer() = default;

  // `add_special`: add BOS/EOS as the vocabulary asks (add_bos_token /
  // add_eos_token). `parse_special`: text such as "<|im_start|>" becomes the
  // control token instead of being split as plain text.
  virtual std::vector<TokenId> encode(std::string_view text, bool add_special,
                                      bool parse_special) const = 0;
  // Text made of parts of two kinds: template text, whose special-token
  // texts ("<|im_start|>") become those tokens, and user text, which is
  // always literal text (no control or user-defined token is matched in it)
  // so that a document or question cannot inject turns. Plain runs that meet across parts are tokenized as one text, so
  // the result equals encode(whole text) wherever the user text holds no
  // control-token text.
  struct TextPart {
    std::string_view text;
    bool parse_special = false;
  };
  virtual std::vector<TokenId> encode_parts(std::span<const TextPart> parts, bool add_special) const = 0;
  // Bytes of one token as they appear in text (may be part of a UTF-8
  // sequence). Control tokens render as their text only when
  // `render_special`.
  virtual std::string token_to_piece(TokenId id, bool render_special = false) const = 0;
  // Whole-sequence decoding; removes the SentencePiece leading space where the
  // vocabulary adds one.
  virtual std::string decode(std::span<const TokenId> tokens, bool render_special = false) const;

  size_t vocab_size() const { return tokens_.size(); }
  // Both throw frugal::Error for ids outside the vocabulary.
  const std::string& token_text(TokenId id) const;
  TokenAttribute token_attribute(TokenId id) const;
  const std::string& model_name() const { return model_name_; }    // llama, gpt2, bert
  const std::string& pre_tokenizer() const { return pre_name_; }   // default, llama-bpe, qwen2...
  TokenId bos() const { return bos_; }   // -1 when the vocabulary has none
  TokenId eos() const { return eos_; }
  TokenId eot() const { return eot_; }
  bool add_bos() const { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  // End-of-generation: EOS, EOT, and control tokens such as <|im_end|>.
  bool is_end_of_generation(TokenId id) const;
  // Looks up a token by its exact text; -1 if absent.
  TokenId find_token(std::string_view text) const;

 protected:
  Tokenizer() = default;
  std::vector<std::string> tokens_;
  std::vector<TokenAttribute> attributes_;
  std::string model_name_;
  std::string pre_name_;
  TokenId bos_ = -1, eos_ = -1, eot_ = -1, unk_ = -1, pad_ = -1;
  bool add_bos_ = false, add_eos_ = false;
  std::vector<TokenId> end_of_generation_;
};

// Streams token pieces to text without splitting UTF-8 sequences: bytes of an
// incomplete character are held until the character is complete.
class Utf8StreamBuffer {
 public:
  // Returns the printable part of everything pushed so far.
  std::string push(std::string_view bytes);
  // Whatever is left at the end (an incomplete tail is returned as is).
  std::string flush();

 private:
  std::string pending_;
};

}  // namespace frugal
