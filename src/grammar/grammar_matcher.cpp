// Matching text against a compiled grammar: a set of parse stacks advanced
// code point by code point (llama.cpp's approach), and the token checks
// built on it.
#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <set>

#include <fmt/format.h>

#include "frugal/error.h"
#include "frugal/grammar.h"

namespace frugal {

namespace {

using Type = GrammarElementType;
using Stack = GrammarMatcher::Stack;

bool ends_sequence(const GrammarElement* e) { return e->type == Type::End || e->type == Type::Alt; }

// Expands rule references at the top of `stack` until a character element
// is on top (or the stack is empty: the text may end there).
void expand(const std::vector<std::vector<GrammarElement>>& rules, Stack stack, std::vector<Stack>& out) {
  if (stack.empty()) {
    out.push_back(std::move(stack));
    return;
  }
  const GrammarElement* top = stack.back();
  if (top->type != Type::RuleRef) {
    out.push_back(std::move(stack));
    return;
  }
  stack.pop_back();
  if (!ends_sequence(top + 1)) stack.push_back(top + 1);  // what follows the reference
  const auto& rule = rules[top->value];
  for (const GrammarElement* alternative = rule.data();;) {
    Stack next = stack;
    if (!ends_sequence(alternative)) next.push_back(alternative);
    expand(rules, std::move(next), out);
    while (!ends_sequence(alternative)) ++alternative;
    if (alternative->type == Type::End) break;
    ++alternative;  // past Alt
  }
}

// Whether the character class at `e` admits `c`; `e` moves past the class.
bool match_class(const GrammarElement*& e, uint32_t c) {
  if (e->type == Type::CharAny) {
    ++e;
    return true;
  }
  const bool positive = e->type == Type::Char;
  bool found = false;
  do {
    if ((e + 1)->type == Type::CharRangeUpper) {
      found = found || (e->value <= c && c <= (e + 1)->value);
      e += 2;
    } else {
      found = found || e->value == c;
      ++e;
    }
  } while (e->type == Type::CharAlt || e->type == Type::CharRangeUpper);
  return found == positive;
}

// Decodes UTF-8 after `pending` bytes; what is left of an incomplete code
// point goes back to `pending`. False for invalid UTF-8.
bool decode_utf8(std::string_view bytes, std::string& pending, std::u32string& out) {
  std::string text = pending + std::string(bytes);
  pending.clear();
  for (size_t i = 0; i < text.size();) {
    const auto b = static_cast<uint8_t>(text[i]);
    const size_t length = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (length == 0 || b == 0xC0 || b == 0xC1 || b > 0xF4) return false;  // no lead byte, or one only overlong forms use
    if (i + length > text.size()) {
      for (size_t j = i + 1; j < text.size(); ++j) {
        if ((static_cast<uint8_t>(text[j]) & 0xC0) != 0x80) return false;
      }
      pending = text.substr(i);
      return true;
    }
    uint32_t c = length == 1 ? b : b & (0xFF >> (length + 1));
    for (size_t j = 1; j < length; ++j) {
      const auto continuation = static_cast<uint8_t>(text[i + j]);
      if ((continuation & 0xC0) != 0x80) return false;
      c = (c << 6) | (continuation & 0x3F);
    }
    out.push_back(c);
    i += length;
  }
  return true;
}

// The code points an incomplete UTF-8 sequence may still become.
std::pair<uint32_t, uint32_t> partial_range(std::string_view pending) {
  const auto lead = static_cast<uint8_t>(pending[0]);
  const size_t length = (lead >> 5) == 6 ? 2 : (lead >> 4) == 14 ? 3 : 4;
  uint32_t value = lead & (0xFF >> (length + 1));
  for (size_t i = 1; i < pending.size(); ++i) value = (value << 6) | (static_cast<uint8_t>(pending[i]) & 0x3F);
  const size_t missing_bits = 6 * (length - pending.size());
  // Shorter forms of the same code points are not UTF-8.
  const uint32_t smallest = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000;
  return {std::max(value << missing_bits, smallest),
          std::min<uint32_t>((value << missing_bits) | ((1u << missing_bits) - 1), 0x10FFFF)};
}

// Whether the class at `e` admits some code point in [low, high].
bool class_meets(const GrammarElement* e, uint32_t low, uint32_t high) {
  if (e->type == Type::CharAny) return true;
  if (e->type == Type::CharNot) {
    // Some code point of the range outside the excluded set (the range of an
    // incomplete sequence is at most 2^18 wide; excluded sets are small).
    for (uint32_t c = low; c <= high && c - low < 4096; ++c) {
      const GrammarElement* at = e;
      if (match_class(at, c)) return true;
    }
    return high - low >= 4096;
  }
  do {
    const uint32_t first = e->value;
    const uint32_t last = (e + 1)->type == Type::CharRangeUpper ? (e + 1)->value : first;
    if (first <= high && low <= last) return true;
    e += (e + 1)->type == Type::CharRangeUpper ? 2 : 1;
  } while (e->type == Type::CharAlt || e->type == Type::CharRangeUpper);
  return false;
}

}  // namespace

// The vocabulary's texts as a prefix tree of code points: tokens whose text
// is whole UTF-8 sit at the node their text ends in; the others (end of
// generation, control tokens, texts ending inside a code point) are checked
// one by one.
struct TokenTree {
  struct Node {
    std::vector<std::pair<char32_t, uint32_t>> children;
    std::vector<TokenId> tokens;
  };
  std::vector<Node> nodes;
  std::vector<TokenId> others;
};

namespace {

std::shared_ptr<const TokenTree> build_token_tree(const Tokenizer& tokenizer) {
  auto tree = std::make_shared<TokenTree>();
  tree->nodes.emplace_back();
  std::map<std::pair<uint32_t, char32_t>, uint32_t> index;
  for (size_t i = 0; i < tokenizer.vocab_size(); ++i) {
    const auto id = static_cast<TokenId>(i);
    const std::string piece = tokenizer.token_to_piece(id, false);
    std::string pending;
    std::u32string text;
    if (tokenizer.is_end_of_generation(id) || piece.empty() || !decode_utf8(piece, pending, text) || !pending.empty()) {
      tree->others.push_back(id);
      continue;
    }
    uint32_t node = 0;
    for (const char32_t c : text) {
      const auto [it, added] = index.emplace(std::pair{node, c}, static_cast<uint32_t>(tree->nodes.size()));
      if (added) {
        tree->nodes[node].children.emplace_back(c, it->second);
        tree->nodes.emplace_back();
      }
      node = it->second;
    }
    tree->nodes[node].tokens.push_back(id);
  }
  return tree;
}

// One tree per vocabulary, built on first use: tokenizers live as long as
// their model. A sample of token texts guards against another vocabulary at
// a reused address.
std::string vocabulary_sample(const Tokenizer& tokenizer) {
  std::string sample = std::to_string(tokenizer.vocab_size());
  for (size_t i = 0; i < 16; ++i) {
    sample += '|';
    sample += tokenizer.token_to_piece(static_cast<TokenId>(i * tokenizer.vocab_size() / 16), true);
  }
  return sample;
}

std::shared_ptr<const TokenTree> token_tree(const Tokenizer& tokenizer) {
  static std::mutex mutex;
  static std::map<const Tokenizer*, std::pair<std::string, std::shared_ptr<const TokenTree>>> trees;
  const std::string sample = vocabulary_sample(tokenizer);
  std::lock_guard lock(mutex);
  auto& [known, tree] = trees[&tokenizer];
  if (!tree || known != sample) {
    tree = build_token_tree(tokenizer);
    known = sample;
  }
  return tree;
}

}  // namespace

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar, const Tokenizer& tokenizer)
    : grammar_(std::move(grammar)), tokenizer_(tokenizer), tree_(token_tree(tokenizer)) {
  const auto& rule = grammar_->rules()[grammar_->root()];
  for (const GrammarElement* alternative = rule.data();;) {
    Stack stack;
    if (!ends_sequence(alternative)) stack.push_back(alternative);
    expand(grammar_->rules(), std::move(stack), stacks_);
    while (!ends_sequence(alternative)) ++alternative;
    if (alternative->type == Type::End) break;
    ++alternative;
  }
}

std::vector<Stack> GrammarMatcher::advance(const std::vector<Stack>& stacks, std::u32string_view text) const {
  const std::vector<Stack>* current = &stacks;
  std::vector<Stack> held, next;
  for (const char32_t c : text) {
    next.clear();
    for (const Stack& stack : *current) {
      if (stack.empty()) continue;
      const GrammarElement* e = stack.back();
      if (!match_class(e, static_cast<uint32_t>(c))) continue;
      Stack moved(stack.begin(), stack.end() - 1);
      if (!ends_sequence(e)) moved.push_back(e);
      expand(grammar_->rules(), std::move(moved), next);
    }
    if (next.empty()) return {};
    // Alternatives that meet again would multiply the stacks.
    std::sort(next.begin(), next.end());
    next.erase(std::unique(next.begin(), next.end()), next.end());
    held.swap(next);
    current = &held;
  }
  return *current;
}

bool GrammarMatcher::can_end() const {
  return pending_utf8_.empty() && std::any_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return s.empty(); });
}

bool GrammarMatcher::must_end() const {
  return can_end() && std::all_of(stacks_.begin(), stacks_.end(), [](const Stack& s) { return s.empty(); });
}

// At most this many states keep their allowed tokens (a vocabulary's bits each).
constexpr size_t kCachedStates = 256;

const std::vector<bool>& GrammarMatcher::allowed_tokens() const {
  if (const auto it = allowed_.find(stacks_); it != allowed_.end()) return it->second;
  if (allowed_.size() >= kCachedStates) allowed_.clear();
  std::vector<bool> allowed(tokenizer_.vocab_size(), false);
  const TokenTree& tree = *tree_;
  // Depth first over the tree, each node's stacks derived from its parent's.
  struct Visit {
    uint32_t node;
    std::vector<Stack> stacks;
  };
  std::vector<Visit> todo = {{0, stacks_}};
  while (!todo.empty()) {
    Visit visit = std::move(todo.back());
    todo.pop_back();
    const TokenTree::Node& node = tree.nodes[visit.node];
    for (const TokenId id : node.tokens) allowed[static_cast<size_t>(id)] = true;
    for (const auto& [c, child] : node.children) {
      const char32_t one[1] = {c};
      std::vector<Stack> next = advance(visit.stacks, std::u32string_view(one, 1));
      if (!next.empty()) todo.push_back({child, std::move(next)});
    }
  }
  // Tokens the tree does not hold: end of generation, and texts that end
  // inside a code point.
  for (const TokenId id : tree.others) allowed[static_cast<size_t>(id)] = check(id);
  return allowed_.emplace(stacks_, std::move(allowed)).first->second;
}

bool GrammarMatcher::accepts(TokenId token) const {
  if (pending_utf8_.empty()) {
    if (const auto it = allowed_.find(stacks_); it != allowed_.end()) {
      return token >= 0 && static_cast<size_t>(token) < it->second.size() && it->second[static_cast<size_t>(token)];
    }
  }
  return check(token);
}

bool GrammarMatcher::check(TokenId token) const {
  if (tokenizer_.is_end_of_generation(token)) return can_end();
  const std::string piece = tokenizer_.token_to_piece(token, false);
  if (piece.empty()) return false;  // control tokens: no text to match
  std::string pending = pending_utf8_;
  std::u32string text;
  if (!decode_utf8(piece, pending, text)) return false;
  const std::vector<Stack> after = text.empty() ? stacks_ : advance(stacks_, text);
  if (after.empty()) return false;
  if (pending.empty()) return true;
  // A code point begun but not finished: some stack must be able to take
  // one it may become.
  const auto [low, high] = partial_range(pending);
  return std::any_of(after.begin(), after.end(),
                     [&](const Stack& stack) { return !stack.empty() && class_meets(stack.back(), low, high); });
}

void GrammarMatcher::accept(TokenId token) {
  const auto refuse = [&] {
    throw Error(fmt::format("internal: token {} ('{}') is not allowed by the grammar here", token,
                            tokenizer_.token_to_piece(token, true)));
  };
  if (tokenizer_.is_end_of_generation(token)) {
    if (!can_end()) refuse();
    return;
  }
  const std::string piece = tokenizer_.token_to_piece(token, false);
  std::string pending = pending_utf8_;
  std::u32string text;
  if (piece.empty() || !decode_utf8(piece, pending, text)) refuse();
  if (!text.empty()) {
    std::vector<Stack> after = advance(stacks_, text);
    if (after.empty()) refuse();
    stacks_ = std::move(after);
  }
  pending_utf8_ = std::move(pending);
}

size_t GrammarMatcher::mask(std::span<float> logits) const {
  const std::vector<bool>* cached = pending_utf8_.empty() ? &allowed_tokens() : nullptr;
  size_t allowed = 0;
  for (size_t id = 0; id < logits.size(); ++id) {
    if (logits[id] == -INFINITY) continue;
    if (cached ? (*cached)[id] : check(static_cast<TokenId>(id))) {
      ++allowed;
    } else {
      logits[id] = -INFINITY;
    }
  }
  return allowed;
}

}  // namespace frugal
