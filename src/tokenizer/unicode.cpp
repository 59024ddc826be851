#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>

namespace frugal::unicode {

uint32_t decode_utf8(std::string_view text, size_t& offset) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t b0 = byte(offset);
  if (b0 < 0x80) {
    offset += 1;
    return b0;
  }
  size_t len = 0;
  uint32_t cpt = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cpt = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cpt = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cpt = b0 & 0x07;
  } else {
    offset += 1;
    return 0xFFFD;
  }
  if (offset + len > text.size()) {
    offset += 1;
    return 0xFFFD;
  }
  for (size_t i = 1; i < len; ++i) {
    const uint8_t b = byte(offset + i);
    if ((b & 0xC0) != 0x80) {
      offset += 1;
      return 0xFFFD;
    }
    cpt = (cpt << 6) | (b & 0x3F);
  }
  offset += len;
  return cpt;
}

std::vector<uint32_t> codepoints(std::string_view text) {
  std::vector<uint32_t> out;
  out.reserve(text.size());
  size_t offset = 0;
  while (offset < text.size()) out.push_back(decode_utf8(text, offset));
  return out;
}

void append_utf8(std::string& out, uint32_t cpt) {
  if (cpt <= 0x7F) {
    out.push_back(static_cast<char>(cpt));
  } else if (cpt <= 0x7FF) {
    out.push_back(static_cast<char>(0xC0 | (cpt >> 6)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0xFFFF) {
    out.push_back(static_cast<char>(0xE0 | (cpt >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0x10FFFF) {
    out.push_back(static_cast<char>(0xF0 | (cpt >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else {
    out += "\xEF\xBF\xBD";
  }
}

uint8_t flags(uint32_t cpt) {
  using unicode_data::kFlagRanges;
  if (cpt >= 0x110000) return kUndefined;
  const auto* end = kFlagRanges + unicode_data::kFlagRanges_size;
  const auto* it = std::upper_bound(kFlagRanges, end, cpt,
                                    [](uint32_t c, const unicode_data::FlagRange& r) { return c < r.first; });
  return (it - 1)->flags;
}

bool is_whitespace(uint32_t cpt) {
  const auto* begin = unicode_data::kWhitespace;
  const auto* end = begin + unicode_data::kWhitespace_size;
  return std::binary_search(begin, end, cpt);
}

uint32_t to_lower(uint32_t cpt) {
  if (cpt < 0x80) return (cpt >= 'A' && cpt <= 'Z') ? cpt + 32 : cpt;
  const auto* begin = unicode_data::kLowercase;
  const auto* end = begin + unicode_data::kLowercase_size;
  const auto* it = std::lower_bound(begin, end, cpt,
                                    [](const unicode_data::CodepointPair& p, uint32_t c) { return p.from < c; });
  return (it != end && it->from == cpt) ? it->to : cpt;
}

uint32_t nfd_first(uint32_t cpt) {
  if (cpt < 0xC0) return cpt;
  const auto* begin = unicode_data::kNfdRanges;
  const auto* end = begin + unicode_data::kNfdRanges_size;
  const auto* it = std::upper_bound(begin, end, cpt,
                                    [](uint32_t c, const unicode_data::NfdRange& r) { return c < r.first; });
  if (it == begin) return cpt;
  --it;
  return (cpt <= it->last) ? it->nfd : cpt;
}

namespace {

struct ByteMap {
  std::array<std::string, 256> to_unicode;
  std::array<int32_t, 512> from_unicode{};  // every mapped codepoint is < 512

  ByteMap() {
    from_unicode.fill(-1);
    std::array<bool, 256> direct{};
    for (int ch = 0x21; ch <= 0x7E; ++ch) direct[ch] = true;
    for (int ch = 0xA1; ch <= 0xAC; ++ch) direct[ch] = true;
    for (int ch = 0xAE; ch <= 0xFF; ++ch) direct[ch] = true;
    int n = 0;
    for (int ch = 0; ch < 256; ++ch) {
      const uint32_t cpt = direct[ch] ? static_cast<uint32_t>(ch) : static_cast<uint32_t>(256 + n++);
      append_utf8(to_unicode[ch], cpt);
      from_unicode[cpt] = ch;
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

}  // namespace

const std::string& byte_to_unicode(uint8_t byte) { return byte_map().to_unicode[byte]; }

int unicode_to_byte(uint32_t cpt) {
  if (cpt >= 512) return -1;
  return byte_map().from_unicode[cpt];
}

}  // namespace frugal::unicode
