// Tokenizer factory, vocabulary loading and the parts shared by all models:
// special-token partitioning, BOS/EOS, pieces, decoding, UTF-8 streaming.
#include "frugal/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <initializer_list>

#include "frugal/error.h"
#include "frugal/gguf.h"
#include "tokenizer/vocab_tokenizer.h"

namespace frugal {

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& file) {
  const GgufValue* model_value = file.find("tokenizer.ggml.model");
  if (model_value == nullptr) {
    throw FormatError(file.source_name() + ": no tokenizer.ggml.model key; the file carries no vocabulary");
  }
  const std::string model = file.get_string("tokenizer.ggml.model");
  const std::string pre = file.get_string_or("tokenizer.ggml.pre", "");
  if (model == "llama") return detail::make_spm_tokenizer(file, pre);
  if (model == "gpt2") return detail::make_bpe_tokenizer(file, pre);
  if (model == "bert") return detail::make_wordpiece_tokenizer(file, pre);
  throw UnsupportedError(file.source_name() + ": unsupported tokenizer model '" + model +
                         "' (tokenizer.ggml.model); supported: llama, gpt2, bert");
}

namespace {
void check_token_id(TokenId id, size_t vocab_size) {
  if (id < 0 || static_cast<size_t>(id) >= vocab_size) {
    throw Error("token id " + std::to_string(id) + " is outside the vocabulary (" + std::to_string(vocab_size) +
                " tokens)");
  }
}
}  // namespace

const std::string& Tokenizer::token_text(TokenId id) const {
  check_token_id(id, tokens_.size());
  return tokens_[static_cast<size_t>(id)];
}

TokenAttribute Tokenizer::token_attribute(TokenId id) const {
  check_token_id(id, attributes_.size());
  return attributes_[static_cast<size_t>(id)];
}

bool Tokenizer::is_end_of_generation(TokenId id) const {
  return id >= 0 && std::find(end_of_generation_.begin(), end_of_generation_.end(), id) != end_of_generation_.end();
}

TokenId Tokenizer::find_token(std::string_view text) const {
  if (const auto* vocab = dynamic_cast<const detail::VocabTokenizer*>(this)) return vocab->text_to_token(text);
  for (size_t i = 0; i < tokens_.size(); ++i) {
    if (tokens_[i] == text) return static_cast<TokenId>(i);
  }
  return -1;
}

std::string Tokenizer::decode(std::span<const TokenId> tokens, bool render_special) const {
  std::string out;
  for (TokenId id : tokens) out += token_to_piece(id, render_special);
  return out;
}

std::string Utf8StreamBuffer::push(std::string_view bytes) {
  pending_.append(bytes);
  const size_t n = pending_.size();
  size_t cut = n;
  // Walk back over continuation bytes to the lead byte of the last sequence.
  size_t i = n;
  size_t continuation = 0;
  while (i > 0 && continuation < 3 && (static_cast<uint8_t>(pending_[i - 1]) & 0xC0) == 0x80) {
    --i;
    ++continuation;
  }
  if (i > 0) {
    const auto lead = static_cast<uint8_t>(pending_[i - 1]);
    size_t need = 1;
    if ((lead & 0xE0) == 0xC0) {
      need = 2;
    } else if ((lead & 0xF0) == 0xE0) {
      need = 3;
    } else if ((lead & 0xF8) == 0xF0) {
      need = 4;
    }
    if (need > 1 && n - (i - 1) < need) cut = i - 1;  // incomplete: hold it back
  }
  std::string out = pending_.substr(0, cut);
  pending_.erase(0, cut);
  return out;
}

std::string Utf8StreamBuffer::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

namespace detail {

namespace {

bool is_one_of(const std::string& text, std::initializer_list<const char*> list) {
  for (const char* s : list) {
    if (text == s) return true;
  }
  return false;
}

std::string lowercase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  int value = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = text[i];
    int digit = 0;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return -1;
    }
    value = value * 16 + digit;
  }
  return value;
}

TokenId VocabTokenizer::text_to_token(std::string_view text) const {
  auto it = token_to_id_.find(text);
  return it == token_to_id_.end() ? -1 : it->second;
}

void VocabTokenizer::load_vocab(const GgufFile& file, const std::string& model, const std::string& pre,
                                const Defaults& defaults) {
  const std::string& source = file.source_name();
  model_name_ = model;
  pre_name_ = pre.empty() ? "default" : pre;

  const GgufValue* tokens_value = file.find("tokenizer.ggml.tokens");
  if (tokens_value == nullptr) throw FormatError(source + ": tokenizer.ggml.tokens is missing");
  tokens_ = file.get_string_array("tokenizer.ggml.tokens");
  const size_t n = tokens_.size();
  if (n == 0) throw FormatError(source + ": tokenizer.ggml.tokens is empty");

  if (file.find("tokenizer.ggml.scores")) {
    scores_ = file.get_float_array("tokenizer.ggml.scores");
    if (scores_.size() < n) {
      throw FormatError(source + ": tokenizer.ggml.scores has " + std::to_string(scores_.size()) +
                        " entries for " + std::to_string(n) + " tokens");
    }
  }
  attributes_.assign(n, TokenAttribute::Normal);
  if (file.find("tokenizer.ggml.token_type")) {
    const std::vector<int32_t> types = file.get_int32_array("tokenizer.ggml.token_type");
    if (types.size() < n) {
      throw FormatError(source + ": tokenizer.ggml.token_type has " + std::to_string(types.size()) +
                        " entries for " + std::to_string(n) + " tokens");
    }
    for (size_t i = 0; i < n; ++i) {
      attributes_[i] = (types[i] >= 0 && types[i] <= 6) ? static_cast<TokenAttribute>(types[i])
                                                         : TokenAttribute::Undefined;
    }
  }

  token_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (tokens_[i].empty()) tokens_[i] = "[EMPTY_" + std::to_string(i) + "]";
    auto [it, inserted] = token_to_id_.emplace(tokens_[i], static_cast<TokenId>(i));
    if (!inserted) {
      throw FormatError(source + ": duplicate token '" + tokens_[i] + "' with ids " + std::to_string(it->second) +
                        " and " + std::to_string(i));
    }
    max_token_len_ = std::max(max_token_len_, tokens_[i].size());
  }

  // Special ids: defaults, disabled when out of range, then the metadata keys.
  const auto in_range = [&](int64_t id) { return id >= 0 && static_cast<size_t>(id) < n; };
  const auto special_id = [&](std::initializer_list<const char*> keys, TokenId fallback) -> TokenId {
    TokenId id = in_range(fallback) ? fallback : -1;
    for (const char* key : keys) {
      if (file.find(key)) {
        const int64_t value = file.get_int(key);
        if (in_range(value)) id = static_cast<TokenId>(value);
        break;
      }
    }
    return id;
  };
  bos_ = special_id({"tokenizer.ggml.bos_token_id", "tokenizer.ggml.cls_token_id"}, defaults.bos);
  eos_ = special_id({"tokenizer.ggml.eos_token_id"}, defaults.eos);
  eot_ = special_id({"tokenizer.ggml.eot_token_id"}, -1);
  TokenId eom = special_id({"tokenizer.ggml.eom_token_id"}, -1);
  unk_ = special_id({"tokenizer.ggml.unknown_token_id"}, defaults.unk);
  sep_ = special_id({"tokenizer.ggml.seperator_token_id", "tokenizer.ggml.separator_token_id"}, defaults.sep);
  pad_ = special_id({"tokenizer.ggml.padding_token_id"}, defaults.pad);
  mask_ = special_id({"tokenizer.ggml.mask_token_id"}, defaults.mask);
  TokenId fim_pre = special_id({"tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id"}, -1);
  TokenId fim_suf = special_id({"tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id"}, -1);
  TokenId fim_mid = special_id({"tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id"}, -1);
  TokenId fim_pad = special_id({"tokenizer.ggml.fim_pad_token_id"}, -1);
  TokenId fim_rep = special_id({"tokenizer.ggml.fim_rep_token_id"}, -1);
  TokenId fim_sep = special_id({"tokenizer.ggml.fim_sep_token_id"}, -1);

  add_bos_ = file.get_bool_or("tokenizer.ggml.add_bos_token", defaults.add_bos);
  add_eos_ = file.get_bool_or("tokenizer.ggml.add_eos_token", defaults.add_eos);
  add_sep_ = file.get_bool_or("tokenizer.ggml.add_sep_token", defaults.add_sep);
  add_space_prefix_ = file.get_bool_or("tokenizer.ggml.add_space_prefix", defaults.add_space_prefix);
  if (add_bos_ && bos_ < 0) throw FormatError(source + ": add_bos_token is true but there is no BOS token id");
  if (add_eos_ && eos_ < 0) throw FormatError(source + ": add_eos_token is true but there is no EOS token id");
  if (add_sep_ && sep_ < 0) throw FormatError(source + ": add_sep_token is true but there is no SEP token id");

  // Like llama.cpp: recognise special tokens by their text and make sure they
  // are control tokens (which also keeps them out of plain-text matching).
  const auto make_control = [&](size_t i) {
    if (attributes_[i] != TokenAttribute::Control) attributes_[i] = TokenAttribute::Control;
  };
  const auto detect = [&](TokenId& id, std::initializer_list<const char*> texts) {
    if (id >= 0) return;
    for (size_t i = 0; i < n; ++i) {
      if (is_one_of(tokens_[i], texts)) {
        id = static_cast<TokenId>(i);
        make_control(i);
        return;
      }
    }
  };
  detect(eot_, {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
                "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>"});
  detect(eom, {"<|eom_id|>"});
  detect(fim_pre, {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
                   "<|code_prefix|>", "<|prefix|>"});
  detect(fim_suf, {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
                   "<|code_suffix|>", "<|suffix|>"});
  detect(fim_mid, {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
                   "<|code_middle|>", "<|middle|>"});
  detect(fim_pad, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"});
  detect(fim_rep, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"});
  detect(fim_sep, {"<|file_sep|>"});

  std::vector<TokenId>& eog = end_of_generation_;
  const auto add_eog = [&](TokenId id) {
    if (id >= 0 && std::find(eog.begin(), eog.end(), id) == eog.end()) eog.push_back(id);
  };
  add_eog(fim_pad);
  add_eog(fim_rep);
  add_eog(fim_sep);
  for (size_t i = 0; i < n; ++i) {
    if (is_one_of(tokens_[i], {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
                               "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
                               "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
                               "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~["})) {
      add_eog(static_cast<TokenId>(i));
      make_control(i);
    }
  }
  for (size_t i = 0; i < n; ++i) {  // gpt-oss: always rendered
    if (is_one_of(tokens_[i], {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"})) {
      attributes_[i] = TokenAttribute::UserDefined;
    }
  }
  add_eog(eos_);
  add_eog(eot_);
  add_eog(eom);
  {  // o200k_harmony / solar-open: <|end|> is not end-of-generation there
    bool has_return = false, has_call = false, has_flush = false;
    TokenId end_id = -1;
    for (TokenId id : eog) {
      const std::string& t = tokens_[static_cast<size_t>(id)];
      has_return |= t == "<|return|>";
      has_call |= t == "<|call|>" || t == "<|calls|>";
      has_flush |= t == "<|flush|>";
      if (t == "<|end|>") end_id = id;
    }
    if (end_id >= 0 && ((has_return && has_call) || (has_call && has_flush))) {
      eog.erase(std::find(eog.begin(), eog.end(), end_id));
      attributes_[static_cast<size_t>(end_id)] = TokenAttribute::UserDefined;
    }
  }
  {  // gemma4 / paddleocr: </s> is not end-of-generation when <|tool_response> is
    TokenId s_id = -1;
    bool has_tool_response = false;
    for (TokenId id : eog) {
      const std::string& t = tokens_[static_cast<size_t>(id)];
      has_tool_response |= t == "<|tool_response>";
      if (t == "</s>") s_id = id;
    }
    if (has_tool_response && s_id >= 0) {
      eog.erase(std::find(eog.begin(), eog.end(), s_id));
      attributes_[static_cast<size_t>(s_id)] = TokenAttribute::Normal;
    }
  }
  std::sort(eog.begin(), eog.end());

  // Special-token cache: longest text first.
  for (size_t i = 0; i < n; ++i) {
    const TokenAttribute a = attributes_[i];
    if (a == TokenAttribute::Control || a == TokenAttribute::UserDefined || a == TokenAttribute::Unknown) {
      special_cache_.push_back(static_cast<TokenId>(i));
    }
  }
  std::stable_sort(special_cache_.begin(), special_cache_.end(), [&](TokenId a, TokenId b) {
    return tokens_[static_cast<size_t>(a)].size() > tokens_[static_cast<size_t>(b)].size();
  });

  // Per-token whitespace stripping around special tokens (llama.cpp's
  // per-model attributes).
  strip_flags_.assign(n, 0);
  const std::string name = lowercase(file.get_string_or("general.name", ""));
  const auto set_strip = [&](const char* text, uint8_t flag, bool on) {
    const TokenId id = text_to_token(text);
    if (id < 0) return;
    auto& f = strip_flags_[static_cast<size_t>(id)];
    f = on ? static_cast<uint8_t>(f | flag) : static_cast<uint8_t>(f & ~flag);
  };
  if (pre_name_.find("jina-v2-") != std::string::npos) {
    set_strip("<mask>", kLstrip, true);
  } else if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (TokenId id : special_cache_) strip_flags_[static_cast<size_t>(id)] |= kRstrip;
    set_strip("</s>", kRstrip, true);
    for (const char* t : {"<unk>", "<s>", "<|endoftext|>"}) set_strip(t, kRstrip, false);
  } else if (name.find("modern-bert") != std::string::npos) {
    set_strip("[MASK]", kLstrip, true);
  }
}

std::vector<Fragment> VocabTokenizer::partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> fragments;
  if (text.empty()) return fragments;
  fragments.push_back({-1, text});
  std::vector<Fragment> pieces;
  for (TokenId id : special_cache_) {
    const TokenAttribute attr = attributes_[static_cast<size_t>(id)];
    if (!parse_special && (attr == TokenAttribute::Control || attr == TokenAttribute::Unknown)) continue;
    const std::string& special = tokens_[static_cast<size_t>(id)];
    const uint8_t strip = strip_flags_[static_cast<size_t>(id)];
    for (size_t i = 0; i < fragments.size(); ++i) {
      if (fragments[i].token >= 0) continue;
      std::string_view raw = fragments[i].text;
      size_t pos = raw.find(special);
      if (pos == std::string_view::npos) continue;
      pieces.clear();
      while (pos != std::string_view::npos) {
        std::string_view left = raw.substr(0, pos);
        if (strip & kLstrip) {
          while (!left.empty() && std::isspace(static_cast<unsigned char>(left.back()))) left.remove_suffix(1);
        }
        if (!left.empty()) pieces.push_back({-1, left});
        pieces.push_back({id, special});
        raw = raw.substr(pos + special.size());
        if (strip & kRstrip) {
          while (!raw.empty() && std::isspace(static_cast<unsigned char>(raw.front()))) raw.remove_prefix(1);
        }
        pos = raw.find(special);
      }
      if (!raw.empty()) pieces.push_back({-1, raw});
      fragments.erase(fragments.begin() + static_cast<std::ptrdiff_t>(i));
      fragments.insert(fragments.begin() + static_cast<std::ptrdiff_t>(i), pieces.begin(), pieces.end());
      i += pieces.size() - 1;
    }
  }
  return fragments;
}

std::vector<TokenId> VocabTokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<TokenId> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && add_bos_) out.push_back(bos_);
  bool after_special = true;  // the start of the input counts as following a special token
  for (const Fragment& fragment : partition(text, parse_special)) {
    if (fragment.token >= 0) {
      out.push_back(fragment.token);
      after_special = true;
    } else {
      tokenize_text(fragment.text, after_special, out);
      after_special = false;
    }
  }
  if (add_special && add_eos_) out.push_back(eos_);
  if (add_special && add_sep_ && model_name_ == "bert") out.push_back(sep_);
  return out;
}

std::vector<TokenId> VocabTokenizer::encode_parts(std::span<const TextPart> parts, bool add_special) const {
  // Partition each part on its own terms, then join neighbouring plain runs
  // (they may come from different parts) before tokenizing them.
  struct Run {
    TokenId token = -1;
    std::string text;
  };
  std::vector<Run> runs;
  for (const TextPart& part : parts) {
    // User text is literal: not even user-defined tokens ("<think>") are
    // matched in it, so it cannot open or close a turn.
    const std::vector<Fragment> fragments =
        part.parse_special ? partition(part.text, true) : std::vector<Fragment>{{-1, part.text}};
    for (const Fragment& fragment : fragments) {
      if (fragment.text.empty() && fragment.token < 0) continue;
      if (fragment.token < 0 && !runs.empty() && runs.back().token < 0) {
        runs.back().text += fragment.text;
      } else {
        runs.push_back({fragment.token, std::string(fragment.text)});
      }
    }
  }
  std::vector<TokenId> out;
  if (add_special && add_bos_) out.push_back(bos_);
  bool after_special = true;
  for (const Run& run : runs) {
    if (run.token >= 0) {
      out.push_back(run.token);
      after_special = true;
    } else {
      tokenize_text(run.text, after_special, out);
      after_special = false;
    }
  }
  if (add_special && add_eos_) out.push_back(eos_);
  if (add_special && add_sep_ && model_name_ == "bert") out.push_back(sep_);
  return out;
}

std::string VocabTokenizer::token_to_piece(TokenId id, bool render_special) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size()) {
    throw Error("token id " + std::to_string(id) + " is out of range (vocabulary of " +
                std::to_string(tokens_.size()) + ")");
  }
  const std::string& text = tokens_[static_cast<size_t>(id)];
  switch (attributes_[static_cast<size_t>(id)]) {
    case TokenAttribute::Control:
    case TokenAttribute::Unknown:
      return render_special ? text : std::string();
    case TokenAttribute::UserDefined:
      return text;
    case TokenAttribute::Normal:
      return normal_piece(id);
    case TokenAttribute::Byte: {
      const int byte = parse_byte_token(text);
      return byte >= 0 ? std::string(1, static_cast<char>(byte)) : std::string();
    }
    default:
      return std::string();
  }
}

std::string VocabTokenizer::decode(std::span<const TokenId> tokens, bool render_special) const {
  std::string out;
  bool at_start = true;
  for (TokenId id : tokens) {
    std::string piece = token_to_piece(id, render_special);
    if (at_start && id == bos_) {
      out += piece;
      continue;
    }
    if (at_start && strip_leading_space() && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    at_start = false;
    out += piece;
  }
  return out;
}

}  // namespace detail
}  // namespace frugal
