// Constrained decoding: grammars in llama.cpp's GBNF syntax, compiled into a
// pushdown automaton over Unicode code points, and a matcher that says which
// tokens may come next in an answer.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "frugal/tokenizer.h"

namespace frugal {

// One element of a compiled rule. A rule is a list of alternatives, each a
// sequence of elements ending in Alt (another alternative follows) or End.
// A character class is a Char/CharNot element followed by CharRangeUpper
// (the upper end of a range that starts at the element before) and CharAlt
// (more characters of the same class) elements.
enum class GrammarElementType : uint8_t { End, Alt, RuleRef, Char, CharNot, CharRangeUpper, CharAlt, CharAny };
struct GrammarElement {
  GrammarElementType type = GrammarElementType::End;
  uint32_t value = 0;  // a code point, or a rule index for RuleRef
};

class Grammar {
 public:
  // Parses GBNF: `name ::= alternatives`, string literals with escapes
  // (\n \t \r \" \\ \xHH \uHHHH \UHHHHHHHH), character classes [a-z] [^"\\],
  // `.`, rule references, ( ) groups, and * + ? {m} {m,} {m,n} repetition;
  // # comments. Throws Error naming the line and column of a syntax error,
  // an undefined rule, a missing root rule, or left recursion.
  static std::shared_ptr<const Grammar> parse(std::string_view text, std::string_view root = "root");

  const std::vector<std::vector<GrammarElement>>& rules() const { return rules_; }
  uint32_t root() const { return root_; }
  const std::string& source() const { return source_; }

 private:
  std::vector<std::vector<GrammarElement>> rules_;
  std::vector<std::string> names_;
  uint32_t root_ = 0;
  std::string source_;
  friend class GrammarParser;
};

// Where an answer stands in a grammar: the set of parse stacks still alive.
// Tokens are checked by their text (token_to_piece), code point by code
// point; a token whose text ends inside a UTF-8 sequence keeps the bytes for
// the next. End-of-generation tokens are allowed only where the grammar may
// end; control tokens without text never.
class GrammarMatcher {
 public:
  GrammarMatcher(std::shared_ptr<const Grammar> grammar, const Tokenizer& tokenizer);
  bool accepts(TokenId token) const;
  // Moves past `token`; throws Error when the grammar does not accept it.
  void accept(TokenId token);
  // Sets the logits of every token the grammar does not accept to -infinity;
  // returns how many stay allowed.
  size_t mask(std::span<float> logits) const;
  bool can_end() const;    // the text so far is a whole sentence of the grammar
  bool must_end() const;   // ... and nothing may follow it

  using Stack = std::vector<const GrammarElement*>;

 private:
  // The stacks after `text` (code points) from `stacks`; empty when rejected.
  std::vector<Stack> advance(const std::vector<Stack>& stacks, std::u32string_view text) const;
  bool check(TokenId token) const;  // accepts() without the cache
  // Which tokens the current state allows: walked down a prefix tree of the
  // vocabulary's texts (a subtree whose first characters the grammar
  // rejects is skipped whole), and kept per state, since a grammar returns
  // to the same states again and again (inside a string, between items).
  const std::vector<bool>& allowed_tokens() const;

  std::shared_ptr<const Grammar> grammar_;
  const Tokenizer& tokenizer_;
  std::vector<Stack> stacks_;
  std::string pending_utf8_;  // the start of a code point split across tokens
  mutable std::map<std::vector<Stack>, std::vector<bool>> allowed_;
  std::shared_ptr<const struct TokenTree> tree_;
};

}  // namespace frugal
