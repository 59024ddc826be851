// GBNF (llama.cpp's grammar syntax) parsed into rules of elements. Repetition
// is rewritten into helper rules, as llama.cpp does: S{m,n} becomes m copies
// of S followed by n - m nested optional ones, S{m,} m copies and a
// recursive rule.
#include <functional>
#include <map>
#include <set>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/grammar.h"

namespace frugal {

using Type = GrammarElementType;

class GrammarParser {
 public:
  explicit GrammarParser(std::string_view text) : text_(text) {}

  std::shared_ptr<const Grammar> run(std::string_view root_name) {
    size_t pos = skip_space(0, true);
    while (pos < text_.size()) pos = parse_rule(pos);
    for (const auto& [name, id] : symbols_) {
      if (id >= grammar_->rules_.size() || grammar_->rules_[id].empty()) {
        throw Error(fmt::format("grammar: rule '{}' is used but never defined", name));
      }
    }
    const auto root = symbols_.find(std::string(root_name));
    if (root == symbols_.end()) throw Error(fmt::format("grammar: no '{}' rule (the rule generation starts from)", root_name));
    grammar_->root_ = root->second;
    grammar_->names_.resize(grammar_->rules_.size());
    for (const auto& [name, id] : symbols_) grammar_->names_[id] = name;
    check_left_recursion();
    grammar_->source_ = std::string(text_);
    return grammar_;
  }

 private:
  [[noreturn]] void fail(size_t pos, std::string_view what) const {
    size_t line = 1, column = 1;
    for (size_t i = 0; i < pos && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    throw Error(fmt::format("grammar: {} at line {}, column {}", what, line, column));
  }

  static bool is_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  }

  size_t skip_space(size_t pos, bool newlines) const {
    while (pos < text_.size()) {
      const char c = text_[pos];
      if (c == ' ' || c == '\t' || (newlines && (c == '\n' || c == '\r'))) {
        ++pos;
      } else if (c == '#') {
        while (pos < text_.size() && text_[pos] != '\n') ++pos;
      } else {
        break;
      }
    }
    return pos;
  }

  uint32_t symbol(const std::string& name) {
    const auto [it, added] = symbols_.emplace(name, next_id_);
    if (added) ++next_id_;
    return it->second;
  }
  // Rules made for groups and repetitions: "name#N", a name no rule of the
  // text can have ('#' starts a comment there).
  uint32_t helper_symbol(const std::string& base) {
    if (next_id_ >= kMaxRules) {
      throw Error(fmt::format("grammar: more than {} rules (after repetitions are expanded); simplify it", kMaxRules));
    }
    const uint32_t id = symbol(fmt::format("{}#{}", base, next_id_));
    defined_.insert(id);
    return id;
  }
  static constexpr uint32_t kMaxRules = 20000;
  void add_rule(uint32_t id, std::vector<GrammarElement> rule) {
    auto& rules = grammar_->rules_;
    if (rules.size() <= id) rules.resize(id + 1);
    rules[id] = std::move(rule);
  }

  // One code point of a literal or class, escapes decoded.
  std::pair<uint32_t, size_t> parse_char(size_t pos) const {
    if (pos >= text_.size()) fail(pos, "unexpected end of the grammar");
    if (text_[pos] == '\\') {
      if (pos + 1 >= text_.size()) fail(pos, "an escape at the end of the grammar");
      const char e = text_[pos + 1];
      const auto hex = [&](size_t digits) {
        uint32_t value = 0;
        for (size_t i = 0; i < digits; ++i) {
          const size_t at = pos + 2 + i;
          if (at >= text_.size()) fail(at, "a short \\x/\\u escape");
          const char h = text_[at];
          const int digit = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                          : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
          if (digit < 0) fail(at, "not a hexadecimal digit in an escape");
          value = value * 16 + static_cast<uint32_t>(digit);
        }
        return std::pair<uint32_t, size_t>{value, pos + 2 + digits};
      };
      switch (e) {
        case 'x': return hex(2);
        case 'u': return hex(4);
        case 'U': return hex(8);
        case 't': return {'\t', pos + 2};
        case 'r': return {'\r', pos + 2};
        case 'n': return {'\n', pos + 2};
        case '\\': case '"': case '[': case ']': case '-': case '^': return {static_cast<uint8_t>(e), pos + 2};
        default: fail(pos, fmt::format("unknown escape \\{}", e));
      }
    }
    // UTF-8 in the grammar text itself.
    const auto byte = static_cast<uint8_t>(text_[pos]);
    const size_t length = byte < 0x80 ? 1 : (byte >> 5) == 6 ? 2 : (byte >> 4) == 14 ? 3 : (byte >> 3) == 30 ? 4 : 0;
    if (length == 0 || pos + length > text_.size()) fail(pos, "invalid UTF-8 in the grammar");
    uint32_t value = length == 1 ? byte : byte & (0xFF >> (length + 1));
    for (size_t i = 1; i < length; ++i) value = (value << 6) | (static_cast<uint8_t>(text_[pos + i]) & 0x3F);
    return {value, pos + length};
  }

  size_t parse_rule(size_t pos) {
    const size_t name_end = parse_name(pos);
    const std::string name(text_.substr(pos, name_end - pos));
    pos = skip_space(name_end, false);
    if (text_.substr(pos, 3) != "::=") fail(pos, "expected ::= after the rule name");
    pos = skip_space(pos + 3, true);
    const uint32_t id = symbol(name);
    if (defined_.count(id)) fail(pos, fmt::format("rule '{}' is defined twice", name));
    defined_.insert(id);
    pos = parse_alternatives(pos, name, id, false);
    if (pos < text_.size() && text_[pos] == '\r') ++pos;
    if (pos < text_.size() && text_[pos] == '\n') {
      ++pos;
    } else if (pos < text_.size()) {
      fail(pos, "expected the end of the rule");
    }
    return skip_space(pos, true);
  }

  size_t parse_name(size_t pos) const {
    size_t end = pos;
    while (end < text_.size() && is_name_char(text_[end])) ++end;
    if (end == pos) fail(pos, "expected a rule name");
    return end;
  }

  size_t parse_alternatives(size_t pos, const std::string& name, uint32_t id, bool nested) {
    std::vector<GrammarElement> rule;
    pos = parse_sequence(pos, name, rule, nested);
    while (pos < text_.size() && text_[pos] == '|') {
      rule.push_back({Type::Alt, 0});
      pos = parse_sequence(skip_space(pos + 1, true), name, rule, nested);
    }
    rule.push_back({Type::End, 0});
    add_rule(id, std::move(rule));
    return pos;
  }

  // S{min,max} (max < 0: unbounded) for the symbol that starts at `start`.
  void repeat(std::vector<GrammarElement>& out, size_t start, int min, int max, const std::string& name,
              size_t pos) {
    if (start == out.size()) fail(pos, "a repetition with nothing before it");
    const std::vector<GrammarElement> symbol_elements(out.begin() + static_cast<std::ptrdiff_t>(start), out.end());
    if (min == 0) {
      out.resize(start);
    } else {
      for (int i = 1; i < min; ++i) out.insert(out.end(), symbol_elements.begin(), symbol_elements.end());
    }
    const int optional = max < 0 ? 1 : max - min;
    uint32_t inner = 0;
    for (int i = 0; i < optional; ++i) {
      // helper ::= S helper | (unbounded), or S inner | (nested optionals).
      const uint32_t id = helper_symbol(name);
      std::vector<GrammarElement> rule = symbol_elements;
      if (max < 0) rule.push_back({Type::RuleRef, id});
      if (max >= 0 && i > 0) rule.push_back({Type::RuleRef, inner});
      rule.push_back({Type::Alt, 0});
      rule.push_back({Type::End, 0});
      add_rule(id, std::move(rule));
      inner = id;
    }
    if (optional > 0) out.push_back({Type::RuleRef, inner});
  }

  size_t parse_count(size_t pos, int& value) const {
    size_t end = pos;
    while (end < text_.size() && text_[end] >= '0' && text_[end] <= '9') ++end;
    if (end == pos) fail(pos, "expected a repetition count");
    if (end - pos > 4 || std::stoi(std::string(text_.substr(pos, end - pos))) > 1000) {
      fail(pos, "a repetition count above 1000");
    }
    value = std::stoi(std::string(text_.substr(pos, end - pos)));
    return end;
  }

  size_t parse_sequence(size_t pos, const std::string& name, std::vector<GrammarElement>& out, bool nested) {
    size_t symbol_start = out.size();
    while (pos < text_.size()) {
      const char c = text_[pos];
      if (c == '"') {
        symbol_start = out.size();
        ++pos;
        while (pos < text_.size() && text_[pos] != '"') {
          const auto [code, next] = parse_char(pos);
          out.push_back({Type::Char, code});
          pos = next;
        }
        if (pos >= text_.size()) fail(pos, "an unterminated string literal");
        pos = skip_space(pos + 1, nested);
      } else if (c == '[') {
        symbol_start = out.size();
        ++pos;
        Type first = Type::Char;
        if (pos < text_.size() && text_[pos] == '^') {
          first = Type::CharNot;
          ++pos;
        }
        bool any = false;
        while (pos < text_.size() && text_[pos] != ']') {
          const auto [low, next] = parse_char(pos);
          out.push_back({any ? Type::CharAlt : first, low});
          any = true;
          pos = next;
          if (pos + 1 < text_.size() && text_[pos] == '-' && text_[pos + 1] != ']') {
            const auto [high, after] = parse_char(pos + 1);
            if (high < low) fail(pos, "a character range that ends below its start");
            out.push_back({Type::CharRangeUpper, high});
            pos = after;
          }
        }
        if (pos >= text_.size()) fail(pos, "an unterminated character class");
        if (!any) fail(pos, "an empty character class");
        pos = skip_space(pos + 1, nested);
      } else if (is_name_char(c)) {
        symbol_start = out.size();
        const size_t end = parse_name(pos);
        out.push_back({Type::RuleRef, symbol(std::string(text_.substr(pos, end - pos)))});
        pos = skip_space(end, nested);
      } else if (c == '(') {
        symbol_start = out.size();
        const uint32_t id = helper_symbol(name);
        pos = parse_alternatives(skip_space(pos + 1, true), name, id, true);
        out.push_back({Type::RuleRef, id});
        if (pos >= text_.size() || text_[pos] != ')') fail(pos, "expected )");
        pos = skip_space(pos + 1, nested);
      } else if (c == '.') {
        symbol_start = out.size();
        out.push_back({Type::CharAny, 0});
        pos = skip_space(pos + 1, nested);
      } else if (c == '*' || c == '+' || c == '?') {
        repeat(out, symbol_start, c == '+' ? 1 : 0, c == '?' ? 1 : -1, name, pos);
        pos = skip_space(pos + 1, nested);
      } else if (c == '{') {
        int min = 0, max = -1;
        pos = parse_count(skip_space(pos + 1, nested), min);
        pos = skip_space(pos, nested);
        if (pos < text_.size() && text_[pos] == ',') {
          pos = skip_space(pos + 1, nested);
          if (pos < text_.size() && text_[pos] != '}') pos = parse_count(pos, max);
        } else {
          max = min;
        }
        pos = skip_space(pos, nested);
        if (pos >= text_.size() || text_[pos] != '}') fail(pos, "expected } after a repetition count");
        if (max >= 0 && max < min) fail(pos, "a repetition whose maximum is below its minimum");
        repeat(out, symbol_start, min, max, name, pos);
        pos = skip_space(pos + 1, nested);
      } else {
        break;
      }
    }
    return pos;
  }

  // A rule that can reach itself without reading a character would make
  // the matcher loop for ever.
  void check_left_recursion() const {
    const auto& rules = grammar_->rules_;
    std::vector<bool> nullable(rules.size(), false);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < rules.size(); ++r) {
        if (nullable[r]) continue;
        bool alternative_nullable = true;
        for (const GrammarElement& e : rules[r]) {
          if (e.type == Type::Alt || e.type == Type::End) {
            if (alternative_nullable) {
              nullable[r] = changed = true;
              break;
            }
            alternative_nullable = true;
          } else if (e.type == Type::RuleRef) {
            alternative_nullable = alternative_nullable && nullable[e.value];
          } else if (e.type != Type::CharAlt && e.type != Type::CharRangeUpper) {
            alternative_nullable = false;
          }
        }
      }
    }
    std::vector<int> state(rules.size(), 0);  // 0 unseen, 1 on the path, 2 done
    std::function<void(size_t)> visit = [&](size_t r) {
      state[r] = 1;
      bool at_start = true;
      for (const GrammarElement& e : rules[r]) {
        if (e.type == Type::Alt || e.type == Type::End) {
          at_start = true;
          continue;
        }
        if (!at_start) continue;
        if (e.type == Type::RuleRef) {
          if (state[e.value] == 1) {
            throw Error(fmt::format("grammar: rule '{}' is left-recursive (it can reach itself before reading a "
                                    "character); rewrite it with repetition",
                                    grammar_->names_[e.value]));
          }
          if (state[e.value] == 0) visit(e.value);
          at_start = nullable[e.value];
        } else if (e.type != Type::CharAlt && e.type != Type::CharRangeUpper) {
          at_start = false;
        }
      }
      state[r] = 2;
    };
    for (size_t r = 0; r < rules.size(); ++r) {
      if (state[r] == 0) visit(r);
    }
  }

  std::string_view text_;
  std::shared_ptr<Grammar> grammar_ = std::make_shared<Grammar>();
  std::map<std::string, uint32_t> symbols_;
  std::set<uint32_t> defined_;
  uint32_t next_id_ = 0;
};

std::shared_ptr<const Grammar> Grammar::parse(std::string_view text, std::string_view root) {
  return GrammarParser(text).run(root);
}

}  // namespace frugal
