// A shared-prefix store of attention keys and values: a trie of tokens whose
// nodes own one KV slot each (the keys and values of that token, every
// layer), with reference counts. Sequences that share a prefix share its
// slots: beams of a beam search, many questions over one knowledge prefix,
// turns of a chat.
//
//  - A sequence is a node: its tokens are the path from the root, its KV rows
//    the slots along that path (path_slots).
//  - Extending a node by a token reuses the child for that token if it exists
//    (its keys and values are already computed) or creates one with a fresh
//    slot. Sharing is therefore copy-on-write by construction: a shared
//    prefix is never written again, a sequence that diverges gets new nodes.
//  - A node's reference count is the number of sequence handles on it plus
//    its children. release() with keep_cached = false frees the branch up to
//    the first node still in use at once (pruned beams); with keep_cached =
//    true unreferenced nodes stay as a cache until evicted, least recently
//    used leaves first, when a new slot would exceed the byte budget.
//
// Slots live in pages (slots_per_page at a time) so their addresses never
// move. Not thread-safe: one owner drives it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "frugal/kv_precision.h"

namespace frugal {

using TokenId = int32_t;
using KvNode = int32_t;
using KvSlot = int32_t;

// Shape of one slot: `layers` key rows and `layers` value rows of
// `row_elements` values stored as `types` says.
struct KvLayout {
  int64_t layers = 0;
  int64_t row_elements = 0;
  KvTypes types;

  size_t key_row_bytes() const { return kv_bytes(types.keys, static_cast<size_t>(row_elements)); }
  size_t value_row_bytes() const { return kv_bytes(types.values, static_cast<size_t>(row_elements)); }
  size_t slot_bytes() const { return static_cast<size_t>(layers) * (key_row_bytes() + value_row_bytes()); }
};

struct KvTrieOptions {
  size_t budget_bytes = 0;     // 0: no limit
  size_t slots_per_page = 64;
};

struct KvTrieStats {
  size_t live_bytes = 0;    // slots held by nodes (referenced or cached)
  size_t shared_bytes = 0;  // slots on the paths of two or more sequence handles
  size_t peak_bytes = 0;    // highest live_bytes so far
  size_t allocated_bytes = 0;  // pages reserved (live slots and free ones)
  size_t nodes = 0;         // without the root
  size_t cached_nodes = 0;  // nodes kept only as cache (no references)
  size_t evictions = 0;
};

// Sequences whose keys and values differ for the same tokens (other LoRA
// scales) are kept apart in one trie by a tag in the high bits of each
// node's token key: tag 0 is the token itself. Vocabularies stay below
// 2^24 tokens; tags go up to kMaxTrieTag.
inline constexpr int kTrieTagShift = 24;
inline constexpr uint32_t kMaxTrieTag = 127;
inline TokenId trie_key(TokenId token, uint32_t tag) {
  return static_cast<TokenId>(static_cast<uint32_t>(token) | (tag << kTrieTagShift));
}
inline TokenId trie_token(TokenId key) { return key & ((TokenId{1} << kTrieTagShift) - 1); }

class KvTrie {
 public:
  static constexpr KvNode kRoot = 0;  // the empty prefix; it has no slot

  KvTrie(KvLayout layout, KvTrieOptions options = {});
  ~KvTrie();
  KvTrie(const KvTrie&) = delete;
  KvTrie& operator=(const KvTrie&) = delete;

  const KvLayout& layout() const { return layout_; }
  // Rows of consecutive slots within a page are consecutive in memory.
  size_t slots_per_page() const { return options_.slots_per_page; }

  // The node of the longest prefix of `tokens` already in the trie, and its
  // length (0 and kRoot when nothing matches). Marks the path as used.
  std::pair<KvNode, size_t> match_prefix(std::span<const TokenId> tokens);

  // The child of `parent` for `token`. `created` is set when the node is new:
  // its slot holds no keys or values yet and the caller must compute them.
  // Evicts cached leaves if the budget requires; throws frugal::Error when
  // the budget is full of referenced slots.
  KvNode extend(KvNode parent, TokenId token, bool* created = nullptr);

  // Sequence handles: retain() adds one on `node`, release() drops one.
  // keep_cached = false frees `node` and its unreferenced ancestors at once;
  // true keeps them for reuse until evicted.
  void retain(KvNode node);
  void release(KvNode node, bool keep_cached);
  // Moves one handle from `node` to its child `child` in O(1): what
  // retain(child) then release(node, true) do, without walking the ancestors
  // (whose count of handles below them does not change). A sequence reading
  // its prompt hands its handle down this way token by token.
  void move_handle_to_child(KvNode node, KvNode child);
  // Frees `node`, which nothing references (no handle, no child), at once:
  // for a node whose keys and values were never written (a failed step).
  void discard(KvNode node);

  KvNode parent(KvNode node) const;
  TokenId token(KvNode node) const;
  KvSlot slot(KvNode node) const;
  size_t depth(KvNode node) const;  // tokens from the root
  int32_t references(KvNode node) const;  // handles + children
  // Slots from the first token to `node` (its depth of them).
  std::vector<KvSlot> path_slots(KvNode node) const;
  std::vector<TokenId> path_tokens(KvNode node) const;

  // The key / value row of `layer` for a slot.
  uint8_t* key_row(int64_t layer, KvSlot slot);
  uint8_t* value_row(int64_t layer, KvSlot slot);

  KvTrieStats stats() const;

  // Frees cached (unreferenced) nodes until live bytes <= `bytes`, least
  // recently used leaves first; returns whether that was reached.
  bool evict_until(size_t bytes);

 private:
  struct Node;
  struct Page;
  KvSlot allocate_slot();
  void free_node(KvNode node);
  void touch(KvNode node);
  void add_users(KvNode node, int delta);
  Node& at(KvNode node);
  const Node& at(KvNode node) const;

  KvLayout layout_;
  KvTrieOptions options_;
  std::vector<Node> nodes_;
  std::vector<KvNode> free_nodes_;
  std::vector<std::unique_ptr<Page>> pages_;
  std::vector<KvSlot> free_slots_;
  uint64_t clock_ = 0;
  size_t live_slots_ = 0;
  size_t shared_slots_ = 0;
  size_t peak_slots_ = 0;
  size_t node_count_ = 0;
  size_t unused_nodes_ = 0;  // nodes with no sequence handle on them or below (the cache)
  size_t evictions_ = 0;
};

}  // namespace frugal
