// Unicode helpers for the tokenizers: UTF-8 decoding, codepoint classes
// (grouped like llama.cpp's unicode tables), lowercase and first-codepoint
// NFD mappings, and the GPT-2 byte <-> unicode map.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace frugal {

namespace unicode_data {
struct FlagRange {
  uint32_t first;  // the range runs to the next entry's first - 1
  uint8_t flags;
};
struct CodepointPair {
  uint32_t from, to;
};
struct NfdRange {
  uint32_t first, last, nfd;
};
extern const FlagRange kFlagRanges[];
extern const size_t kFlagRanges_size;
extern const uint32_t kWhitespace[];
extern const size_t kWhitespace_size;
extern const CodepointPair kLowercase[];
extern const size_t kLowercase_size;
extern const NfdRange kNfdRanges[];
extern const size_t kNfdRanges_size;
}  // namespace unicode_data

namespace unicode {

enum Flag : uint8_t {
  kUndefined = 1,
  kNumber = 2,
  kLetter = 4,
  kSeparator = 8,
  kAccentMark = 16,
  kPunctuation = 32,
  kSymbol = 64,
  kControl = 128,
};

// Length of the UTF-8 sequence started by `lead` (1 for continuation or
// invalid bytes), as llama.cpp's unicode_len_utf8.
inline size_t utf8_len(char lead) {
  static constexpr uint8_t kLookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLookup[static_cast<uint8_t>(lead) >> 4];
}

// Decodes the codepoint at `offset` and advances it; invalid sequences give
// U+FFFD and advance by one byte.
uint32_t decode_utf8(std::string_view text, size_t& offset);
std::vector<uint32_t> codepoints(std::string_view text);
void append_utf8(std::string& out, uint32_t cpt);

uint8_t flags(uint32_t cpt);
bool is_whitespace(uint32_t cpt);
uint32_t to_lower(uint32_t cpt);
// First codepoint of the canonical decomposition (the base letter).
uint32_t nfd_first(uint32_t cpt);

// GPT-2 byte-level BPE: each byte maps to one printable codepoint.
const std::string& byte_to_unicode(uint8_t byte);
// Inverse map; returns -1 for a codepoint that is not in the table.
int unicode_to_byte(uint32_t cpt);

}  // namespace unicode
}  // namespace frugal
