// Greedy pair merging shared by SentencePiece (pairs ranked by the merged
// token's score) and BPE (pairs ranked by merge order): the text starts as one
// symbol per UTF-8 character, and the best adjacent pair is merged until no
// pair is mergeable.
#pragma once

#include <algorithm>
#include <optional>
#include <queue>
#include <string_view>
#include <vector>

#include "tokenizer/unicode.h"

namespace frugal::detail {

struct MergeSymbol {
  int prev, next;  // neighbours in the list, -1 at the ends
  size_t start, n;  // bytes of the text; n == 0 once merged into its left neighbour
};

// Merges `text` in place of `symbols` (reused between calls to save
// allocations). `priority(left, right)` returns the pair's priority (higher
// merges first, ties to the leftmost pair) or nullopt if it cannot merge.
// Returns the surviving symbols through `symbols`; walk them from index 0 via
// `next`.
template <typename Priority, typename PriorityOf>
void merge_best_pairs(std::string_view text, std::vector<MergeSymbol>& symbols, PriorityOf priority) {
  symbols.clear();
  for (size_t offset = 0; offset < text.size();) {
    const size_t len = std::min(unicode::utf8_len(text[offset]), text.size() - offset);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, offset + len == text.size() ? -1 : index + 1, offset, len});
    offset += len;
  }

  struct Pair {
    int left, right;
    Priority priority;
    size_t size;  // bytes when queued: a later size means the entry is stale
  };
  const auto lower = [](const Pair& l, const Pair& r) {
    return l.priority < r.priority || (l.priority == r.priority && l.left > r.left);
  };
  std::priority_queue<Pair, std::vector<Pair>, decltype(lower)> queue(lower);
  const auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const MergeSymbol& l = symbols[static_cast<size_t>(left)];
    const MergeSymbol& r = symbols[static_cast<size_t>(right)];
    const std::optional<Priority> p = priority(text.substr(l.start, l.n), text.substr(r.start, r.n));
    if (p) queue.push({left, right, *p, l.n + r.n});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);

  while (!queue.empty()) {
    const Pair pair = queue.top();
    queue.pop();
    MergeSymbol& left = symbols[static_cast<size_t>(pair.left)];
    MergeSymbol& right = symbols[static_cast<size_t>(pair.right)];
    if (left.n == 0 || right.n == 0 || left.n + right.n != pair.size) continue;  // stale
    left.n += right.n;
    right.n = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = pair.left;
    try_add(left.prev, pair.left);
    try_add(pair.left, left.next);
  }
}

}  // namespace frugal::detail
