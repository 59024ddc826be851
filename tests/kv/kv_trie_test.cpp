// The shared-prefix KV store: structure, reference counts, freeing, sharing,
// copy-on-write by construction, eviction under a budget, byte accounting,
// and a randomized run against a plain model of the same operations.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <set>

#include "frugal/error.h"
#include "frugal/kv_trie.h"

namespace frugal {
namespace {

constexpr KvLayout kLayout{2, 8, KvPrecision::F32};  // 2 layers, rows of 8 floats: 128 bytes per token

// Appends `tokens` below `node`; returns the last node and how many were new.
std::pair<KvNode, size_t> append(KvTrie& trie, KvNode node, const std::vector<TokenId>& tokens) {
  size_t created_count = 0;
  for (TokenId t : tokens) {
    bool created = false;
    node = trie.extend(node, t, &created);
    created_count += created;
  }
  return {node, created_count};
}

void write_pattern(KvTrie& trie, KvSlot slot, float value) {
  for (int64_t layer = 0; layer < kLayout.layers; ++layer) {
    auto* k = reinterpret_cast<float*>(trie.key_row(layer, slot));
    auto* v = reinterpret_cast<float*>(trie.value_row(layer, slot));
    for (int64_t i = 0; i < kLayout.row_elements; ++i) {
      k[i] = value + static_cast<float>(layer);
      v[i] = -value - static_cast<float>(layer);
    }
  }
}

bool has_pattern(KvTrie& trie, KvSlot slot, float value) {
  for (int64_t layer = 0; layer < kLayout.layers; ++layer) {
    const auto* k = reinterpret_cast<const float*>(trie.key_row(layer, slot));
    const auto* v = reinterpret_cast<const float*>(trie.value_row(layer, slot));
    for (int64_t i = 0; i < kLayout.row_elements; ++i) {
      if (k[i] != value + static_cast<float>(layer) || v[i] != -value - static_cast<float>(layer)) return false;
    }
  }
  return true;
}

TEST(KvTrie, PrefixesAreSharedAndMatched) {
  KvTrie trie(kLayout);
  const auto [a, new_a] = append(trie, KvTrie::kRoot, {1, 2, 3, 4});
  trie.retain(a);
  EXPECT_EQ(new_a, 4u);
  const auto [b, new_b] = append(trie, KvTrie::kRoot, {1, 2, 9});
  trie.retain(b);
  EXPECT_EQ(new_b, 1u);  // only the 9 is new
  EXPECT_EQ(trie.path_tokens(b), (std::vector<TokenId>{1, 2, 9}));
  EXPECT_EQ(trie.path_slots(a)[1], trie.path_slots(b)[1]);
  EXPECT_NE(trie.path_slots(a)[2], trie.path_slots(b)[2]);
  const std::vector<TokenId> query = {1, 2, 3, 7, 7};
  const auto [node, length] = trie.match_prefix(query);
  EXPECT_EQ(length, 3u);
  EXPECT_EQ(trie.path_tokens(node), (std::vector<TokenId>{1, 2, 3}));
  const auto s = trie.stats();
  EXPECT_EQ(s.nodes, 5u);
  EXPECT_EQ(s.live_bytes, 5u * kLayout.slot_bytes());
  EXPECT_EQ(s.shared_bytes, 2u * kLayout.slot_bytes());  // tokens 1 and 2
  EXPECT_EQ(kLayout.slot_bytes(), 128u);
}

TEST(KvTrie, ReferenceCountsAndImmediateFreeingOfPrunedBranches) {
  KvTrie trie(kLayout);
  const KvNode prefix = append(trie, KvTrie::kRoot, {5, 6}).first;
  trie.retain(prefix);  // e.g. the prompt, held by the search
  std::vector<KvNode> beams;
  for (TokenId t : {10, 11, 12, 13}) {
    const KvNode beam = append(trie, prefix, {t, t + 100}).first;
    trie.retain(beam);
    beams.push_back(beam);
  }
  EXPECT_EQ(trie.references(prefix), 1 + 4);  // its handle + 4 children
  EXPECT_EQ(trie.stats().nodes, 2u + 8u);
  trie.release(beams[1], false);  // pruned: both of its nodes go at once
  trie.release(beams[3], false);
  EXPECT_EQ(trie.stats().nodes, 2u + 4u);
  EXPECT_EQ(trie.references(prefix), 1 + 2);
  EXPECT_THROW(trie.token(beams[1]), Error);  // freed
  trie.release(beams[0], false);
  trie.release(beams[2], false);
  trie.release(prefix, false);
  const auto s = trie.stats();
  EXPECT_EQ(s.nodes, 0u);  // no leak
  EXPECT_EQ(s.live_bytes, 0u);
  EXPECT_EQ(s.shared_bytes, 0u);
  EXPECT_EQ(s.peak_bytes, 10u * kLayout.slot_bytes());
  EXPECT_THROW(trie.release(prefix, false), Error);
}

TEST(KvTrie, DivergingSequencesNeverOverwriteSharedRows) {
  KvTrie trie(kLayout);
  const KvNode common = append(trie, KvTrie::kRoot, {1, 2}).first;
  for (KvSlot slot : trie.path_slots(common)) write_pattern(trie, slot, static_cast<float>(slot));
  trie.retain(common);
  const KvNode left = append(trie, common, {3}).first;
  const KvNode right = append(trie, common, {4}).first;
  write_pattern(trie, trie.slot(left), 1000.0f);
  write_pattern(trie, trie.slot(right), 2000.0f);
  trie.retain(left);
  trie.retain(right);
  // Copy-on-write by construction: divergence made new slots, the shared
  // ones still hold what was written first.
  for (KvSlot slot : trie.path_slots(common)) EXPECT_TRUE(has_pattern(trie, slot, static_cast<float>(slot)));
  EXPECT_TRUE(has_pattern(trie, trie.slot(left), 1000.0f));
  EXPECT_TRUE(has_pattern(trie, trie.slot(right), 2000.0f));
  EXPECT_EQ(trie.path_slots(left).front(), trie.path_slots(right).front());
}

TEST(KvTrie, CachedPrefixesAreReusedThenEvictedLeastRecentlyUsedFirst) {
  KvTrieOptions options;
  options.budget_bytes = 6 * kLayout.slot_bytes();
  options.slots_per_page = 4;
  KvTrie trie(kLayout, options);
  const KvNode old_question = append(trie, KvTrie::kRoot, {1, 2, 3}).first;
  trie.retain(old_question);
  trie.release(old_question, true);  // kept as cache
  EXPECT_EQ(trie.stats().cached_nodes, 3u);
  const KvNode recent = append(trie, KvTrie::kRoot, {7, 8}).first;
  trie.retain(recent);
  trie.release(recent, true);
  EXPECT_EQ(trie.match_prefix(std::vector<TokenId>{1, 2, 3}).second, 3u);  // reuse: now the most recent
  const KvNode held = append(trie, KvTrie::kRoot, {9}).first;
  trie.retain(held);
  // Full (6 tokens). Two more evict the least recently used cached leaves:
  // the {7, 8} branch (its leaf, then its root), not {1, 2, 3}.
  const KvNode more = append(trie, held, {10, 11}).first;
  trie.retain(more);
  EXPECT_EQ(trie.stats().evictions, 2u);
  EXPECT_EQ(trie.match_prefix(std::vector<TokenId>{7}).second, 0u);
  EXPECT_EQ(trie.match_prefix(std::vector<TokenId>{1, 2, 3}).second, 3u);
  EXPECT_LE(trie.stats().live_bytes, options.budget_bytes);
  // Everything left is either held or needed: a clear error, not a crash.
  trie.retain(trie.match_prefix(std::vector<TokenId>{1, 2, 3}).first);
  EXPECT_THROW(trie.extend(more, 12), Error);
  EXPECT_EQ(trie.stats().live_bytes, 6 * kLayout.slot_bytes());
}

TEST(KvTrie, ExtendingACachedLeafNeverEvictsIt) {
  KvTrieOptions options;
  options.budget_bytes = 2 * kLayout.slot_bytes();
  KvTrie trie(kLayout, options);
  const KvNode a = append(trie, KvTrie::kRoot, {1, 2}).first;
  trie.retain(a);
  trie.release(a, true);
  // {1, 2} is all cache; extending it must evict something else or fail,
  // never the node being extended or its path.
  const KvNode leaf = trie.match_prefix(std::vector<TokenId>{1, 2}).first;
  EXPECT_THROW(trie.extend(leaf, 3), Error);
  EXPECT_EQ(trie.path_tokens(leaf), (std::vector<TokenId>{1, 2}));
}

TEST(KvTrie, BadUseIsAClearError) {
  EXPECT_THROW(KvTrie(KvLayout{0, 8, KvPrecision::F32}), Error);
  EXPECT_THROW(KvTrie(KvLayout{2, 8, KvPrecision::Q8_0}), Error);  // not whole blocks of 32
  KvTrieOptions tiny;
  tiny.budget_bytes = 10;
  EXPECT_THROW(KvTrie(kLayout, tiny), Error);
  KvTrie trie(kLayout);
  EXPECT_THROW(trie.retain(KvTrie::kRoot), Error);
  EXPECT_THROW(trie.extend(42, 1), Error);
  EXPECT_THROW(trie.key_row(0, 0), Error);  // no page yet
  const KvNode n = trie.extend(KvTrie::kRoot, 1);
  EXPECT_THROW(trie.key_row(2, trie.slot(n)), Error);
}

// Random operations against a model that keeps the sequences as token
// vectors: every path reads back, slots of distinct prefixes are distinct,
// and the byte counts equal those of the set of distinct prefixes.
TEST(KvTrie, RandomOperationsKeepTheInvariants) {
  std::mt19937 rng(3);
  KvTrie trie(kLayout, {0, 8});
  std::vector<std::pair<KvNode, std::vector<TokenId>>> sequences;
  for (int step = 0; step < 3000; ++step) {
    const int action = static_cast<int>(rng() % 10);
    if (action < 6 || sequences.empty()) {  // branch from an existing sequence or start anew
      std::vector<TokenId> tokens;
      KvNode from = KvTrie::kRoot;
      if (!sequences.empty() && rng() % 3) {
        const auto& base = sequences[rng() % sequences.size()];
        from = base.first;
        tokens = base.second;
      }
      const int extra = 1 + static_cast<int>(rng() % 4);
      std::vector<TokenId> more;
      for (int i = 0; i < extra; ++i) more.push_back(static_cast<TokenId>(rng() % 5));
      const KvNode node = append(trie, from, more).first;
      trie.retain(node);
      tokens.insert(tokens.end(), more.begin(), more.end());
      sequences.emplace_back(node, tokens);
    } else {
      const size_t victim = rng() % sequences.size();
      trie.release(sequences[victim].first, false);
      sequences.erase(sequences.begin() + static_cast<long>(victim));
    }
    if (step % 50 != 0) continue;
    std::set<std::vector<TokenId>> prefixes;
    std::map<std::vector<TokenId>, int> users;
    for (const auto& [node, tokens] : sequences) {
      ASSERT_EQ(trie.path_tokens(node), tokens);
      for (size_t length = 1; length <= tokens.size(); ++length) {
        const std::vector<TokenId> prefix(tokens.begin(), tokens.begin() + static_cast<long>(length));
        prefixes.insert(prefix);
        users[prefix]++;
      }
    }
    std::map<KvSlot, std::vector<TokenId>> owner;
    for (const auto& [node, tokens] : sequences) {
      const auto slots = trie.path_slots(node);
      for (size_t i = 0; i < slots.size(); ++i) {
        const std::vector<TokenId> prefix(tokens.begin(), tokens.begin() + static_cast<long>(i + 1));
        auto [it, inserted] = owner.emplace(slots[i], prefix);
        ASSERT_EQ(it->second, prefix) << "one slot serves two different prefixes";
      }
    }
    size_t shared = 0;
    for (const auto& [prefix, count] : users) shared += count >= 2;
    const auto s = trie.stats();
    ASSERT_EQ(s.nodes, prefixes.size());
    ASSERT_EQ(s.live_bytes, prefixes.size() * kLayout.slot_bytes());
    ASSERT_EQ(s.shared_bytes, shared * kLayout.slot_bytes());
  }
  for (const auto& [node, tokens] : sequences) trie.release(node, false);
  EXPECT_EQ(trie.stats().nodes, 0u);
  EXPECT_EQ(trie.stats().live_bytes, 0u);
}

TEST(KvTrie, HandingAHandleToAChildEqualsRetainThenRelease) {
  // Two tries, the same operations: one hands each sequence's handle down
  // with move_handle_to_child (O(1)), the other with retain + release (which
  // walk every ancestor). Their accounting must agree at every step.
  KvTrie moved(kLayout), walked(kLayout);
  auto same = [&] {
    const KvTrieStats a = moved.stats(), b = walked.stats();
    EXPECT_EQ(a.live_bytes, b.live_bytes);
    EXPECT_EQ(a.shared_bytes, b.shared_bytes);
    EXPECT_EQ(a.nodes, b.nodes);
    EXPECT_EQ(a.cached_nodes, b.cached_nodes);
  };
  const std::vector<std::vector<TokenId>> prompts = {{1, 2, 3, 4, 5}, {1, 2, 3, 9}, {1, 2, 3, 4, 5, 6, 7}, {8}};
  std::vector<KvNode> tips_moved, tips_walked;
  for (const auto& prompt : prompts) {
    KvNode m = KvTrie::kRoot, w = KvTrie::kRoot;
    for (TokenId token : prompt) {
      const KvNode next_m = moved.extend(m, token), next_w = walked.extend(w, token);
      if (m == KvTrie::kRoot) {
        moved.retain(next_m);
      } else {
        moved.move_handle_to_child(m, next_m);
      }
      walked.retain(next_w);
      if (w != KvTrie::kRoot) walked.release(w, true);
      m = next_m;
      w = next_w;
      same();
    }
    tips_moved.push_back(m);
    tips_walked.push_back(w);
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    moved.release(tips_moved[i], true);
    walked.release(tips_walked[i], true);
    same();
  }
  EXPECT_EQ(moved.stats().cached_nodes, moved.stats().nodes);
  // Misuse is an error, not corruption.
  const KvNode a = moved.extend(KvTrie::kRoot, 40), b = moved.extend(a, 41), c = moved.extend(KvTrie::kRoot, 42);
  EXPECT_THROW(moved.move_handle_to_child(a, b), Error);  // no handle on a
  moved.retain(a);
  EXPECT_THROW(moved.move_handle_to_child(a, c), Error);  // c is not a's child
  EXPECT_THROW(moved.discard(a), Error);                  // still referenced
  moved.move_handle_to_child(a, b);
  moved.release(b, true);
  moved.discard(b);
  EXPECT_THROW(moved.token(b), Error);
}

}  // namespace
}  // namespace frugal
