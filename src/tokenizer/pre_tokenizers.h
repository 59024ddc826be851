// Pre-tokenizers of byte-level BPE vocabularies: the regex lists named by
// `tokenizer.ggml.pre`, taken from llama.cpp (llm_tokenizer_bpe), and a PCRE2
// splitter that applies them in order the way llama.cpp's
// unicode_regex_split does (each regex splits the pieces left by the
// previous one; text between matches stays as pieces of its own).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace frugal::detail {

struct PreTokenizerConfig {
  std::string canonical;  // name of the llama.cpp pre-tokenizer type, e.g. "llama3"
  std::vector<std::string> regexes;
  bool ignore_merges = false;  // a whole pre-token that is in the vocabulary is used as is
  bool add_bos = false;        // default of add_bos_token for this type
  bool no_bos = false;         // the type has no BOS token (chatglm)
};

// Throws UnsupportedError for an unknown name. An empty name means "default".
PreTokenizerConfig pre_tokenizer_config(const std::string& name);

class RegexSplitter {
 public:
  explicit RegexSplitter(const std::vector<std::string>& regexes);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Pieces of `text` (which must be valid UTF-8), in order, covering it.
  std::vector<std::string_view> split(std::string_view text) const;

 private:
  std::vector<void*> codes_;  // pcre2_code_8*
};

}  // namespace frugal::detail
