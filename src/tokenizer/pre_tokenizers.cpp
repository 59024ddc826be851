#include "tokenizer/pre_tokenizers.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>


#include "frugal/error.h"

namespace frugal::detail {

namespace {

// Regexes as in llama.cpp's llm_tokenizer_bpe constructor. Where llama.cpp runs
// a hand-written matcher for the GPT-2 regex, that matcher also accepts a
// trailing `\s+`; kGpt2 spells it out.
const char* const kGpt2 = R"re('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)re";
const char* const kLlama3 =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const kQwen2 =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const kQwen35 =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const kJais2 =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1})re";
// deepseek-llm letters, written with escapes: the literal characters of the
// original include canonical singletons (U+1FBE, U+2126, U+212A...) that
// Unicode normalisation would silently change.
const char* const kDeepseekLlmLetters =
    R"re(\s?[)re"
    R"re(A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293})re"
    R"re(\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C})re"
    R"re(\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5})re"
    R"re(\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B})re"
    R"re(\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45})re"
    R"re(\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4})re"
    R"re(\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB})re"
    R"re(\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115})re"
    R"re(\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139})re"
    R"re(\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4})re"
    R"re(\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F})re"
    R"re(\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17})re"
    R"re(\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB})re"
    R"re(\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943})re"
    R"re(]+)re";
const char* const kDeepseekLlmPunct = R"re(\s?[!-/:-~！-／：-～‘-‟　-。]+)re";
const char* const kCjk = R"re([一-龥ࠀ-一가-퟿]+)re";
const char* const kDeepseek3Main =
    R"re([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const kTekken =
    R"re([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const kGpt4o =
    R"re([^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const kPoro = R"re( ?[^(\s|.,!?…。，、।۔،)]+)re";
const char* const kBailing =
    R"re('(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)re";
const char* const kSeedCoder =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const kMiniCpm5 =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const kUfakzeka =
    R"re([^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)re";
const char* const kExaoneMoe =
    R"re((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+)re";

struct PreType {
  std::vector<std::string> names;
  PreTokenizerConfig config;
};

PreTokenizerConfig make(const char* canonical, std::vector<std::string> regexes, bool ignore_merges = false,
                        bool add_bos = false) {
  PreTokenizerConfig c;
  c.canonical = canonical;
  c.regexes = std::move(regexes);
  c.ignore_merges = ignore_merges;
  c.add_bos = add_bos;
  return c;
}

const std::vector<PreType>& pre_types() {
  static const std::vector<PreType> types = [] {
    std::vector<PreType> t;
    t.push_back({{"default", ""},
                 make("default", {R"re([\p{P}\$\+<=>\^~\|]+)re", kGpt2, R"re(\p{N}+)re", "[0-9][0-9][0-9]"})});
    t.push_back({{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                  "jina-v5-nano"},
                 make("llama3", {kLlama3}, true, true)});
    t.push_back({{"dbrx", "smaug-bpe"}, make("dbrx", {kLlama3})});
    t.push_back({{"jais-2"}, make("jais-2", {kJais2})});
    t.push_back({{"deepseek-llm"},
                 make("deepseek-llm", {"[\r\n]", kDeepseekLlmLetters, kDeepseekLlmPunct, R"re(\s+$)re", kCjk,
                                       R"re(\p{N}+)re"})});
    t.push_back({{"deepseek-v3", "hunyuan-dense", "hy_v4", "joyai-llm"},
                 make("deepseek-v3", {R"re(\p{N}{1,3})re", "[一-龥぀-ゟ゠-ヿ]+", kDeepseek3Main})});
    t.push_back({{"deepseek-coder"},
                 make("deepseek-coder",
                      {"[\r\n]", R"re(\s?\p{L}+)re", R"re(\s?\p{P}+)re", kCjk, R"re(\p{N})re"})});
    t.push_back({{"falcon"}, make("falcon", {R"re([\p{P}\$\+<=>\^~\|`]+)re", kGpt2, "[0-9][0-9][0-9]"})});
    t.push_back({{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b", "mellum2"},
                 make("starcoder", {R"re(\p{N})re", kGpt2})});
    t.push_back({{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
                  "mellum", "modern-bert", "exaone4", "jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt", "olmo",
                  "jais", "trillion", "granite-docling"},
                 make("gpt-2", {kGpt2})});
    t.push_back({{"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "megrez", "stablelm2", "hunyuan", "solar-open",
                  "grok-2"},
                 make("qwen2", {kQwen2})});
    t.push_back({{"laguna"}, make("laguna", {"[^\\n]+|[\\n]+", kQwen2})});
    t.push_back({{"qwen35"}, make("qwen35", {kQwen35})});
    t.push_back({{"poro-chat", "bloom", "gpt3-finnish"}, make("poro", {kPoro})});
    t.push_back({{"viking"}, make("viking", {kPoro, R"re(\p{N})re"})});
    t.push_back({{"tekken"}, make("tekken", {kTekken}, true, true)});
    t.push_back({{"chameleon"},
                 make("chameleon", {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
                                    "([\\t\\n]|    |  )", R"re(\p{N})re", R"re([\p{P}!-/:-@\[-`{-~])re", kGpt2},
                      false, true)});
    t.push_back({{"gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"}, make("gpt-4o", {kGpt4o})});
    t.push_back({{"superbpe"}, make("superbpe", {R"re(\p{N}+)re", R"re((?=(\d{3})+(?!\d)))re"})});
    t.push_back({{"bailingmoe", "bailingmoe2", "llada-moe"}, make("bailingmoe", {kBailing})});
    t.push_back({{"seed-coder"}, make("seed-coder", {kSeedCoder})});
    t.push_back({{"minicpm5"}, make("minicpm5", {R"re(\p{N}{1,3})re", kMiniCpm5}, true)});
    t.push_back({{"ufakzeka"}, make("ufakzeka", {kUfakzeka})});
    t.push_back({{"exaone-moe"}, make("exaone-moe", {kExaoneMoe})});
    PreTokenizerConfig glm = make("chatglm4", {kLlama3});
    glm.no_bos = true;
    t.push_back({{"glm4", "chatglm-bpe"}, glm});
    return t;
  }();
  return types;
}

}  // namespace

PreTokenizerConfig pre_tokenizer_config(const std::string& name) {
  for (const auto& type : pre_types()) {
    for (const std::string& n : type.names) {
      if (name == n) return type.config;
    }
  }
  throw UnsupportedError("unsupported pre-tokenizer '" + name + "' (tokenizer.ggml.pre)");
}

RegexSplitter::RegexSplitter(const std::vector<std::string>& regexes) {
  for (const auto& regex : regexes) {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex.data()), regex.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY | PCRE2_MATCH_INVALID_UTF,
                                     &error, &error_offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      for (void* c : codes_) pcre2_code_free(static_cast<pcre2_code*>(c));
      throw UnsupportedError("cannot compile pre-tokenizer regex '" + regex + "' at offset " +
                             std::to_string(error_offset) + ": " + reinterpret_cast<const char*>(message));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter when JIT is unavailable
    codes_.push_back(code);
  }
}

RegexSplitter::~RegexSplitter() {
  for (void* c : codes_) pcre2_code_free(static_cast<pcre2_code*>(c));
}

std::vector<std::string_view> RegexSplitter::split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  if (text.empty()) return pieces;
  pieces.push_back(text);
  std::vector<std::string_view> next;
  for (void* c : codes_) {
    auto* code = static_cast<pcre2_code*>(c);
    pcre2_match_data* match = pcre2_match_data_create_from_pattern(code, nullptr);
    next.clear();
    next.reserve(pieces.size() * 2);
    for (std::string_view piece : pieces) {
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      size_t start = 0;     // where the next search starts
      size_t emitted = 0;   // end of what has been emitted
      while (start <= piece.size()) {
        int rc = pcre2_match(code, subject, piece.size(), start, 0, match, nullptr);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
          // JIT stack exhausted on a pathological input: the interpreter uses the heap.
          rc = pcre2_match(code, subject, piece.size(), start, PCRE2_NO_JIT, match, nullptr);
        }
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          PCRE2_UCHAR message[256];
          pcre2_get_error_message(rc, message, sizeof(message));
          pcre2_match_data_free(match);
          throw Error(std::string("pre-tokenizer regex failed on a piece of ") + std::to_string(piece.size()) +
                      " bytes: " + reinterpret_cast<const char*>(message));
        }
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
        const size_t begin = ovector[0], end = ovector[1];
        if (begin > emitted) next.push_back(piece.substr(emitted, begin - emitted));
        if (end > begin) {
          next.push_back(piece.substr(begin, end - begin));
          emitted = end;
          start = end;
        } else {
          // An empty match only marks a split point; step over one character.
          emitted = begin;
          if (begin >= piece.size()) break;
          size_t step = 1;
          while (begin + step < piece.size() && (static_cast<uint8_t>(piece[begin + step]) & 0xC0) == 0x80) ++step;
          start = begin + step;
        }
      }
      if (emitted < piece.size()) next.push_back(piece.substr(emitted));
    }
    pcre2_match_data_free(match);
    pieces.swap(next);
  }
  return pieces;
}

}  // namespace frugal::detail
