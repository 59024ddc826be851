#include "frugal/kv_trie.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <queue>

#include <fmt/format.h>

#include "frugal/error.h"

namespace frugal {

struct KvTrie::Node {
  TokenId token = -1;
  KvNode parent = -1;
  KvSlot slot = -1;
  int32_t handles = 0;  // sequence handles on this node
  int32_t users = 0;    // sequence handles on this node or below it
  uint32_t depth = 0;
  uint64_t last_used = 0;
  bool in_use = false;
  // Few children per node (a chain for a prompt, k for beams): a vector
  // searched linearly beats a map here.
  std::vector<std::pair<TokenId, KvNode>> children;

  int32_t references() const { return handles + static_cast<int32_t>(children.size()); }
};

// One page of slots: for each layer the key rows of all its slots, then the
// value rows, so consecutive slots of a layer are contiguous.
struct KvTrie::Page {
  std::unique_ptr<uint8_t[]> bytes;
};

KvTrie::KvTrie(KvLayout layout, KvTrieOptions options) : layout_(layout), options_(options) {
  if (layout_.layers <= 0 || layout_.row_elements <= 0 ||
      !kv_precision_fits(layout_.types.keys, static_cast<size_t>(layout_.row_elements)) ||
      !kv_precision_fits(layout_.types.values, static_cast<size_t>(layout_.row_elements))) {
    throw Error(fmt::format("KV trie: invalid layout ({} layers, rows of {} {} values)", layout_.layers,
                            layout_.row_elements, kv_types_name(layout_.types)));
  }
  if (options_.slots_per_page == 0) throw Error("KV trie: slots_per_page must be positive");
  if (options_.budget_bytes != 0 && options_.budget_bytes < layout_.slot_bytes()) {
    throw Error(fmt::format("KV trie: a budget of {} bytes cannot hold one token ({} bytes)", options_.budget_bytes,
                            layout_.slot_bytes()));
  }
  Node root;
  root.in_use = true;
  nodes_.push_back(std::move(root));
}

KvTrie::~KvTrie() = default;

KvTrie::Node& KvTrie::at(KvNode node) {
  if (node < 0 || static_cast<size_t>(node) >= nodes_.size() || !nodes_[static_cast<size_t>(node)].in_use) {
    throw Error(fmt::format("KV trie: node {} does not exist (freed or never made)", node));
  }
  return nodes_[static_cast<size_t>(node)];
}

const KvTrie::Node& KvTrie::at(KvNode node) const { return const_cast<KvTrie*>(this)->at(node); }

void KvTrie::touch(KvNode node) { at(node).last_used = ++clock_; }

std::pair<KvNode, size_t> KvTrie::match_prefix(std::span<const TokenId> tokens) {
  KvNode node = kRoot;
  size_t matched = 0;
  for (TokenId token : tokens) {
    const auto& children = at(node).children;
    const auto it = std::find_if(children.begin(), children.end(), [&](const auto& c) { return c.first == token; });
    if (it == children.end()) break;
    node = it->second;
    touch(node);
    ++matched;
  }
  return {node, matched};
}

KvSlot KvTrie::allocate_slot() {
  const size_t slot_bytes = layout_.slot_bytes();
  if (options_.budget_bytes != 0 && (live_slots_ + 1) * slot_bytes > options_.budget_bytes &&
      !evict_until(options_.budget_bytes - slot_bytes)) {
    throw Error(fmt::format("KV trie: the budget of {} bytes is full of tokens still in use ({} tokens of {} bytes); "
                            "raise the budget or release sequences",
                            options_.budget_bytes, live_slots_, slot_bytes));
  }
  if (free_slots_.empty()) {
    const size_t first = pages_.size() * options_.slots_per_page;
    if (first + options_.slots_per_page > static_cast<size_t>(std::numeric_limits<KvSlot>::max())) {
      throw Error("KV trie: too many slots");
    }
    auto page = std::make_unique<Page>();
    page->bytes = std::make_unique<uint8_t[]>(options_.slots_per_page * slot_bytes);
    pages_.push_back(std::move(page));
    // Handed out lowest first, so a sequence's slots tend to be contiguous.
    for (size_t s = options_.slots_per_page; s-- > 0;) free_slots_.push_back(static_cast<KvSlot>(first + s));
  }
  const KvSlot slot = free_slots_.back();
  free_slots_.pop_back();
  ++live_slots_;
  peak_slots_ = std::max(peak_slots_, live_slots_);
  return slot;
}

KvNode KvTrie::extend(KvNode parent, TokenId token, bool* created) {
  {
    Node& p = at(parent);
    const auto it =
        std::find_if(p.children.begin(), p.children.end(), [&](const auto& c) { return c.first == token; });
    if (it != p.children.end()) {
      if (created) *created = false;
      touch(it->second);
      return it->second;
    }
  }
  // Hold the parent while a slot is found: eviction must not take it.
  at(parent).handles++;
  KvSlot slot;
  try {
    slot = allocate_slot();
  } catch (...) {
    at(parent).handles--;
    throw;
  }
  at(parent).handles--;

  KvNode id;
  if (!free_nodes_.empty()) {
    id = free_nodes_.back();
    free_nodes_.pop_back();
  } else {
    id = static_cast<KvNode>(nodes_.size());
    nodes_.emplace_back();
  }
  Node& node = nodes_[static_cast<size_t>(id)];
  node = Node{};
  node.token = token;
  node.parent = parent;
  node.slot = slot;
  node.depth = at(parent).depth + 1;
  node.in_use = true;
  node.last_used = ++clock_;
  at(parent).children.emplace_back(token, id);
  ++node_count_;
  ++unused_nodes_;  // no sequence handle on it or below it yet
  if (created) *created = true;
  return id;
}

void KvTrie::add_users(KvNode node, int delta) {
  for (KvNode n = node; n != kRoot; n = at(n).parent) {
    Node& x = at(n);
    const bool was_shared = x.users >= 2, was_unused = x.users == 0;
    x.users += delta;
    const bool is_shared = x.users >= 2, is_unused = x.users == 0;
    if (was_shared != is_shared) shared_slots_ += is_shared ? 1 : static_cast<size_t>(-1);
    if (was_unused != is_unused) unused_nodes_ += is_unused ? 1 : static_cast<size_t>(-1);
  }
}

void KvTrie::retain(KvNode node) {
  if (node == kRoot) throw Error("KV trie: the root is not a sequence");
  at(node).handles++;
  add_users(node, 1);
  touch(node);
}

void KvTrie::release(KvNode node, bool keep_cached) {
  Node& x = at(node);
  if (node == kRoot || x.handles <= 0) throw Error(fmt::format("KV trie: node {} holds no sequence to release", node));
  x.handles--;
  add_users(node, -1);
  if (keep_cached) return;
  while (node != kRoot && at(node).references() == 0) {
    const KvNode up = at(node).parent;
    free_node(node);
    node = up;
  }
}

void KvTrie::move_handle_to_child(KvNode node, KvNode child) {
  if (node == kRoot || at(node).handles <= 0) {
    throw Error(fmt::format("KV trie: node {} holds no sequence to hand down", node));
  }
  Node& c = at(child);
  if (c.parent != node) throw Error(fmt::format("KV trie: node {} is not a child of node {}", child, node));
  at(node).handles--;
  c.handles++;
  // Only the child's count changes: every ancestor had the handle below it
  // before and still has.
  const bool was_shared = c.users >= 2, was_unused = c.users == 0;
  c.users++;
  if (!was_shared && c.users >= 2) ++shared_slots_;
  if (was_unused) --unused_nodes_;
  touch(child);
}

void KvTrie::discard(KvNode node) {
  if (node == kRoot || at(node).references() != 0) {
    throw Error(fmt::format("KV trie: node {} is still referenced and cannot be discarded", node));
  }
  free_node(node);
}

void KvTrie::free_node(KvNode node) {
  Node& x = at(node);
  Node& p = at(x.parent);
  const auto it = std::find_if(p.children.begin(), p.children.end(), [&](const auto& c) { return c.second == node; });
  p.children.erase(it);
  free_slots_.push_back(x.slot);
  --live_slots_;
  --node_count_;
  if (x.users == 0) --unused_nodes_;
  x = Node{};
  free_nodes_.push_back(node);
}

// One pass collects the unreferenced nodes (leaves of the cache) into a
// heap by last use; freeing one may turn its parent into a leaf, which joins
// the heap. O(nodes + evicted log nodes) per call, not per evicted node.
bool KvTrie::evict_until(size_t bytes) {
  const size_t slot_bytes = layout_.slot_bytes();
  if (live_slots_ * slot_bytes <= bytes) return true;
  using Candidate = std::pair<uint64_t, KvNode>;  // (last use, node): oldest on top
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  for (size_t i = 1; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    if (n.in_use && n.references() == 0) heap.emplace(n.last_used, static_cast<KvNode>(i));
  }
  while (live_slots_ * slot_bytes > bytes) {
    if (heap.empty()) return false;
    const KvNode victim = heap.top().second;
    heap.pop();
    const KvNode parent = nodes_[static_cast<size_t>(victim)].parent;
    free_node(victim);
    ++evictions_;
    const Node& p = nodes_[static_cast<size_t>(parent)];
    if (parent != kRoot && p.references() == 0) heap.emplace(p.last_used, parent);
  }
  return true;
}

KvNode KvTrie::parent(KvNode node) const { return at(node).parent; }
TokenId KvTrie::token(KvNode node) const { return at(node).token; }
KvSlot KvTrie::slot(KvNode node) const { return at(node).slot; }
size_t KvTrie::depth(KvNode node) const { return at(node).depth; }
int32_t KvTrie::references(KvNode node) const { return at(node).references(); }

std::vector<KvSlot> KvTrie::path_slots(KvNode node) const {
  std::vector<KvSlot> slots(at(node).depth);
  for (KvNode n = node; n != kRoot; n = at(n).parent) slots[at(n).depth - 1] = at(n).slot;
  return slots;
}

std::vector<TokenId> KvTrie::path_tokens(KvNode node) const {
  std::vector<TokenId> tokens(at(node).depth);
  for (KvNode n = node; n != kRoot; n = at(n).parent) tokens[at(n).depth - 1] = at(n).token;
  return tokens;
}

uint8_t* KvTrie::key_row(int64_t layer, KvSlot slot) {
  if (layer < 0 || layer >= layout_.layers || slot < 0 ||
      static_cast<size_t>(slot) >= pages_.size() * options_.slots_per_page) {
    throw Error(fmt::format("KV trie: no row for layer {} slot {}", layer, slot));
  }
  const size_t page = static_cast<size_t>(slot) / options_.slots_per_page;
  const size_t index = static_cast<size_t>(slot) % options_.slots_per_page;
  // Per layer: the page's key rows, then its value rows.
  const size_t layer_bytes = options_.slots_per_page * (layout_.key_row_bytes() + layout_.value_row_bytes());
  return pages_[page]->bytes.get() + static_cast<size_t>(layer) * layer_bytes + index * layout_.key_row_bytes();
}

uint8_t* KvTrie::value_row(int64_t layer, KvSlot slot) {
  const size_t index = static_cast<size_t>(slot) % options_.slots_per_page;
  return key_row(layer, slot) + (options_.slots_per_page - index) * layout_.key_row_bytes() +
         index * layout_.value_row_bytes();
}

KvTrieStats KvTrie::stats() const {
  KvTrieStats s;
  const size_t slot_bytes = layout_.slot_bytes();
  s.live_bytes = live_slots_ * slot_bytes;
  s.shared_bytes = shared_slots_ * slot_bytes;
  s.peak_bytes = peak_slots_ * slot_bytes;
  s.allocated_bytes = pages_.size() * options_.slots_per_page * slot_bytes;
  s.nodes = node_count_;
  s.cached_nodes = unused_nodes_;
  s.evictions = evictions_;
  return s;
}

}  // namespace frugal
